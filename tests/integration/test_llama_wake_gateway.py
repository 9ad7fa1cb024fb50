"""Wake-on-demand through the real gateway (create_app under uvicorn) with ECS on moto.

No create_app hook is needed: with LLAMA_CPP_ECS_CLUSTER/SERVICE in the settings the registry wraps the
llama_cpp adapter, and the waker's lazily built boto3 client talks to moto (``mock_aws`` patches botocore
for the whole process, the gateway's threads included).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import ServerThread
from tests.ports import free_port
from tollgate.config import Settings
from tollgate.providers.llama_wake import LAST_USED_TAG

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")

REGION = "us-east-1"
BODY = {"model": "llama_cpp/auto", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}


def _closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def ecs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with moto.mock_aws():
        client = boto3.client("ecs", region_name=REGION)
        client.create_cluster(clusterName="gpu")
        client.register_task_definition(
            family="llama", containerDefinitions=[{"name": "llama-server", "image": "x", "memory": 512}]
        )
        client.create_service(cluster="gpu", serviceName="llama", taskDefinition="llama", desiredCount=0)
        yield client


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "default_provider": "llama_cpp",
        "llama_cpp_ecs_cluster": "gpu",
        "llama_cpp_ecs_service": "llama",
        "llama_cpp_base_url": _closed_port_url(),
        "llama_cpp_wake_retry_after_seconds": 120,
        "aws_region": REGION,
    }
    return Settings(**(values | overrides))


def described(ecs: Any) -> dict[str, Any]:
    return dict(ecs.describe_services(cluster="gpu", services=["llama"], include=["TAGS"])["services"][0])


@pytest.mark.parametrize("stream", [False, True])
def test_asleep_llama_cpp_is_503_with_retry_after_and_wakes_the_service(
    ecs: Any, start_gateway: Callable[..., ServerThread], stream: bool
) -> None:
    gateway = start_gateway(settings())
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=BODY | {"stream": stream}, timeout=10)
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "120"
    error = response.json()["error"]
    assert error["code"] == "provider_starting"
    assert "retry in ~120 s" in error["message"]
    assert described(ecs)["desiredCount"] == 1


def with_openai_fallback(fake_openai: FakeOpenAI) -> Settings:
    return settings(
        llama_cpp_fallback_provider="openai",
        openai_api_key="sk-upstream",
        openai_base_url=f"{fake_openai.url}/v1",
    )


def test_asleep_llama_cpp_uses_the_configured_fallback(
    ecs: Any, fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread]
) -> None:
    gateway = start_gateway(with_openai_fallback(fake_openai))
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=BODY, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Hello from fake"
    assert response.json()["model"] == "gpt-4o-mini"
    ((path, _, upstream_body),) = fake_openai.requests
    assert (path, upstream_body["model"]) == ("/v1/chat/completions", "gpt-4o-mini")
    assert described(ecs)["desiredCount"] == 1  # and the GPU service is on its way up


def test_running_llama_cpp_is_called_and_marked_used(
    ecs: Any, fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread]
) -> None:
    ecs.update_service(cluster="gpu", service="llama", desiredCount=1)  # moto: the task runs at once
    gateway = start_gateway(settings(llama_cpp_base_url=fake_openai.url))
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=BODY, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["x-tollgate-provider"] == "llama_cpp"
    assert [path for path, _, _ in fake_openai.requests] == ["/v1/chat/completions"]
    tags = {t["key"]: t["value"] for t in described(ecs).get("tags") or []}
    assert LAST_USED_TAG in tags


def test_a_fallback_answer_is_priced_and_audited_as_the_fallback(
    ecs: Any, fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread]
) -> None:
    """ECS says llama.cpp runs, but the server still refuses (loading): the fallback attempt answers, and it
    is what the cost, the audit entry and the headers name (it used to be booked as free llama_cpp)."""
    ecs.update_service(cluster="gpu", service="llama", desiredCount=1)
    gateway = start_gateway(with_openai_fallback(fake_openai))
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=BODY, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["x-tollgate-provider"] == "openai"
    assert response.headers["x-tollgate-attempts"] == "2"
    assert float(response.headers["x-tollgate-cost-usd"]) > 0  # gpt-4o-mini is priced; llama_cpp is free
    (entry,) = httpx.get(f"{gateway.url}/v1/audit", timeout=10).json()["entries"]
    assert (entry["provider"], entry["model"], entry["status"]) == ("openai", "gpt-4o-mini", "ok")
    assert entry["cost_micro_usd"] > 0 and entry["details"]["attempts"] == 2
