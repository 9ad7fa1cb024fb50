"""Wake-on-demand against moto's ECS: waking, the awake cache, the fallback, the idle scale-down.

moto's ECS sets ``runningCount`` to the desired count as soon as ``update_service`` raises it (and to
``MOTO_ECS_SERVICE_RUNNING``, default 0, at creation), so "asleep", "woken" and "running" are all real
moto states; no fake client is needed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")

from tollgate.config import Settings  # noqa: E402
from tollgate.errors import UpstreamUnavailable  # noqa: E402
from tollgate.providers.base import ChatCall, Chunk, TextDelta  # noqa: E402
from tollgate.providers.llama_wake import (  # noqa: E402
    LAST_USED_TAG,
    LlamaCppWaker,
    WakeOnDemandProvider,
)
from tollgate.providers.registry import fallback_provider  # noqa: E402
from tollgate.schemas.openai import ChatCompletionRequest  # noqa: E402

REGION = "us-east-1"
HANDLER = Path(__file__).resolve().parents[2] / "functions" / "llama_idle" / "handler.py"


def load_idle_handler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("llama_idle_handler", HANDLER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ecs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with moto.mock_aws():
        client = boto3.client("ecs", region_name=REGION)
        client.create_cluster(clusterName="gpu")
        client.register_task_definition(
            family="llama",
            containerDefinitions=[{"name": "llama-server", "image": "llama.cpp:server-cuda", "memory": 512}],
        )
        client.create_service(cluster="gpu", serviceName="llama", taskDefinition="llama", desiredCount=0)
        yield client


def service(ecs: Any) -> dict[str, Any]:
    found = ecs.describe_services(cluster="gpu", services=["llama"], include=["TAGS"])["services"]
    return dict(found[0])


def tags(ecs: Any) -> dict[str, str]:
    return {t["key"]: t["value"] for t in service(ecs).get("tags") or []}


def make_waker(ecs: Any, clock: Clock | None = None, wall: float = 1_700_000_000.0) -> LlamaCppWaker:
    return LlamaCppWaker(
        "gpu",
        "llama",
        region=REGION,
        retry_after=240,
        client=ecs,
        clock=clock or Clock(),
        wall_clock=lambda: wall,
    )


class ScriptedProvider:
    """Answers with the chunks it was given, or raises; records the calls it saw."""

    def __init__(self, name: str, chunks: list[Chunk] | None = None, error: Exception | None = None) -> None:
        self.name = name
        self.chunks = chunks or [TextDelta(f"hello from {name}")]
        self.error = error
        self.calls: list[ChatCall] = []

    async def chat(self, call: ChatCall) -> AsyncIterator[Chunk]:
        self.calls.append(call)
        if self.error is not None:
            raise self.error
        for chunk in self.chunks:
            yield chunk

    async def aclose(self) -> None:
        pass


def llama_call() -> ChatCall:
    request = ChatCompletionRequest.model_validate(
        {"model": "smollm2", "messages": [{"role": "user", "content": "hi"}]}
    )
    return ChatCall(request_id="r1", provider="llama_cpp", model="smollm2", max_tokens=64, request=request)


async def collect(provider: WakeOnDemandProvider) -> list[Chunk]:
    return [chunk async for chunk in provider.chat(llama_call())]


# ------------------------------------------------------------------------------------------ waker


async def test_asleep_service_is_woken_and_reports_not_awake(ecs: Any) -> None:
    waker = make_waker(ecs)
    assert await waker.ensure_awake() is False
    state = service(ecs)
    assert state["desiredCount"] == 1
    assert tags(ecs)[LAST_USED_TAG] == "1700000000"  # a fresh wake is not idle
    await waker.aclose()


async def test_running_service_is_awake_and_cached(ecs: Any) -> None:
    ecs.update_service(cluster="gpu", service="llama", desiredCount=1)  # moto: runningCount follows
    calls: list[str] = []
    ecs.meta.events.register("before-call.ecs.DescribeServices", lambda **_: calls.append("describe"))
    clock = Clock()
    waker = make_waker(ecs, clock)
    assert await waker.ensure_awake() is True
    assert await waker.ensure_awake() is True
    assert calls == ["describe"]  # the second answer came from the cache
    clock.now += 11
    assert await waker.ensure_awake() is True
    assert calls == ["describe", "describe"]
    await waker.aclose()


async def test_starting_service_is_not_woken_twice(ecs: Any) -> None:
    clock = Clock()
    waker = make_waker(ecs, clock)
    assert await waker.ensure_awake() is False
    updates: list[str] = []
    ecs.meta.events.register("before-call.ecs.UpdateService", lambda **_: updates.append("update"))
    assert await waker.ensure_awake() is False  # cached "asleep": no ECS call at all
    clock.now += 6
    assert await waker.ensure_awake() is True  # moto: the woken task now runs
    assert updates == []
    await waker.aclose()


async def test_record_use_tags_at_most_once_a_minute(ecs: Any) -> None:
    clock = Clock()
    wall = [1_700_000_000.0]
    waker = LlamaCppWaker(
        "gpu", "llama", region=REGION, retry_after=240, client=ecs, clock=clock, wall_clock=lambda: wall[0]
    )
    await waker.record_use()
    assert tags(ecs)[LAST_USED_TAG] == "1700000000"
    wall[0] += 30
    clock.now += 30
    await waker.record_use()
    assert tags(ecs)[LAST_USED_TAG] == "1700000000"
    wall[0] += 31
    clock.now += 31
    await waker.record_use()
    assert tags(ecs)[LAST_USED_TAG] == "1700000061"
    await waker.aclose()


# --------------------------------------------------------------------------------------- provider


async def test_asleep_without_fallback_is_503_with_retry_after(ecs: Any) -> None:
    inner = ScriptedProvider("llama_cpp")
    provider = WakeOnDemandProvider(inner, make_waker(ecs))
    with pytest.raises(UpstreamUnavailable) as caught:
        await collect(provider)
    assert caught.value.retry_after == 240
    assert "retry in ~240 s" in caught.value.message
    assert inner.calls == []
    assert service(ecs)["desiredCount"] == 1
    await provider.aclose()


async def test_asleep_is_provider_starting_for_the_router(ecs: Any) -> None:
    """The wake wrapper never answers for another provider itself: the router's fallback attempt does,
    so the fallback's price, audit entry and allow-list apply (tests/integration/test_llama_wake_gateway)."""
    inner = ScriptedProvider("llama_cpp")
    provider = WakeOnDemandProvider(inner, make_waker(ecs))
    with pytest.raises(UpstreamUnavailable) as caught:
        await collect(provider)
    assert caught.value.code == "provider_starting" and caught.value.retry_after == 240
    assert inner.calls == []
    assert service(ecs)["desiredCount"] == 1  # woken
    await provider.aclose()


async def test_awake_delegates_to_llama_cpp_and_records_use(ecs: Any) -> None:
    ecs.update_service(cluster="gpu", service="llama", desiredCount=1)
    inner = ScriptedProvider("llama_cpp")
    provider = WakeOnDemandProvider(inner, make_waker(ecs))
    assert await collect(provider) == [TextDelta("hello from llama_cpp")]
    assert len(inner.calls) == 1
    assert tags(ecs)[LAST_USED_TAG] == "1700000000"
    await provider.aclose()


async def test_refused_connection_while_starting_is_provider_starting_and_marks_asleep(ecs: Any) -> None:
    ecs.update_service(cluster="gpu", service="llama", desiredCount=1)
    inner = ScriptedProvider("llama_cpp", error=UpstreamUnavailable("cannot connect to llama_cpp"))
    provider = WakeOnDemandProvider(inner, make_waker(ecs))
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable) as caught:
            await collect(provider)
        assert caught.value.code == "provider_starting"
    assert len(inner.calls) == 1  # the second request believed the cached "asleep"
    await provider.aclose()


async def test_service_stopped_behind_the_cache_is_woken_again(ecs: Any) -> None:
    ecs.update_service(cluster="gpu", service="llama", desiredCount=1)
    inner = ScriptedProvider("llama_cpp")
    provider = WakeOnDemandProvider(inner, make_waker(ecs))
    await collect(provider)  # awake, cached
    ecs.update_service(cluster="gpu", service="llama", desiredCount=0)  # the idle check stopped it
    inner.error = UpstreamUnavailable("cannot connect to llama_cpp")
    with pytest.raises(UpstreamUnavailable) as caught:
        await collect(provider)
    assert caught.value.retry_after == 240
    assert service(ecs)["desiredCount"] == 1
    await provider.aclose()


async def test_failure_after_streaming_began_is_passed_on(ecs: Any) -> None:
    ecs.update_service(cluster="gpu", service="llama", desiredCount=1)

    class Breaks(ScriptedProvider):
        async def chat(self, call: ChatCall) -> AsyncIterator[Chunk]:
            yield TextDelta("partial")
            raise UpstreamUnavailable("connection lost")

    provider = WakeOnDemandProvider(Breaks("llama_cpp"), make_waker(ecs))
    with pytest.raises(UpstreamUnavailable, match="connection lost"):
        await collect(provider)
    await provider.aclose()


async def test_ecs_errors_do_not_block_a_running_server(ecs: Any) -> None:
    inner = ScriptedProvider("llama_cpp")
    waker = LlamaCppWaker("missing-cluster", "llama", region=REGION, retry_after=240, client=ecs)
    provider = WakeOnDemandProvider(inner, waker)
    assert await collect(provider) == [TextDelta("hello from llama_cpp")]
    await provider.aclose()


def test_fallback_names_are_canonical() -> None:
    assert fallback_provider(Settings(llama_cpp_fallback_provider="anthropic")) == "claude"
    assert fallback_provider(Settings()) is None
    with pytest.raises(ValueError, match="another known provider"):
        fallback_provider(Settings(llama_cpp_fallback_provider="llama.cpp"))


# ------------------------------------------------------------------------------------- idle check


def test_idle_handler_scales_to_zero_after_the_idle_period_and_not_before(
    ecs: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    idle = load_idle_handler()
    ecs.update_service(cluster="gpu", service="llama", desiredCount=1)
    arn = service(ecs)["serviceArn"]
    ecs.tag_resource(resourceArn=arn, tags=[{"key": LAST_USED_TAG, "value": "1700000000"}])
    assert idle.LAST_USED_TAG == LAST_USED_TAG

    kept = idle.check(ecs, "gpu", "llama", 30, now=1_700_000_000 + 29 * 60)
    assert (kept["action"], kept["reason"], kept["idle_seconds"]) == ("none", "in_use", 1740)
    assert service(ecs)["desiredCount"] == 1

    monkeypatch.setenv("LLAMA_CPP_ECS_CLUSTER", "gpu")
    monkeypatch.setenv("LLAMA_CPP_ECS_SERVICE", "llama")
    monkeypatch.setenv("LLAMA_CPP_IDLE_MINUTES", "30")
    monkeypatch.setattr(idle, "_client", ecs)
    monkeypatch.setattr(idle.time, "time", lambda: 1_700_000_000 + 31 * 60)
    stopped = idle.handler({"source": "aws.events"}, None)
    assert stopped["action"] == "scaled_to_zero"
    assert service(ecs)["desiredCount"] == 0
    line = capsys.readouterr().out.strip().splitlines()
    assert len(line) == 1
    assert '"action": "scaled_to_zero"' in line[0]

    again = idle.check(ecs, "gpu", "llama", 30, now=1_700_000_000 + 36 * 60)
    assert (again["action"], again["reason"]) == ("none", "already_stopped")


def test_idle_handler_without_tag_uses_the_deployment_time(ecs: Any) -> None:
    idle = load_idle_handler()
    ecs.update_service(cluster="gpu", service="llama", desiredCount=1)
    deployed = max(d["updatedAt"].timestamp() for d in service(ecs)["deployments"])
    assert idle.check(ecs, "gpu", "llama", 30, now=deployed + 60)["reason"] == "in_use"
    assert idle.check(ecs, "gpu", "llama", 30, now=deployed + 31 * 60)["action"] == "scaled_to_zero"
