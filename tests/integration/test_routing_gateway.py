"""The routing engine on real sockets: fault-scripted fake upstreams behind a TOLLGATE_CONFIG, the official
openai SDK (streamed and not) and the anthropic SDK on /v1/messages as clients.

Deployment A (openai, weight 10^6: tried first) and B (openai) serve the public name ``smart``; its fallback
``backup`` is an Anthropic deployment C. ``solo`` is A alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI, Script
from tests.fakes.server import ServerThread
from tests.ports import free_port
from tollgate.config import Settings
from tollgate.store.sqlite import SQLiteStore

MESSAGES = [{"role": "user", "content": "hello there"}]


@dataclass
class Fleet:
    gateway: ServerThread
    a: FakeOpenAI
    b: FakeOpenAI
    c: FakeAnthropic

    @property
    def url(self) -> str:
        return self.gateway.url

    def sdk(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="open-mode", max_retries=0)

    def chat(self, model: str = "smart", **body: Any) -> httpx.Response:
        payload = {"model": model, "messages": MESSAGES, "max_tokens": 20, **body}
        return httpx.post(f"{self.url}/v1/chat/completions", json=payload, timeout=20)

    def audit(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/v1/audit", timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["chain_valid"] is True
        return list(response.json()["entries"])

    def pool(self) -> dict[str, Any]:
        pools = httpx.get(f"{self.url}/v1/tokens/pools", timeout=10).json()["pools"]
        return dict(pools[0])


def config_text(a: str, b: str, c: str, refused: int, **router: Any) -> str:
    policy = {"retries": 2, "backoff_seconds": 0.01, "retry_after_max_seconds": 1.5}
    policy |= {"allowed_failures": 1, "cooldown_seconds": 0.6} | router
    return f"""
models:
  - name: smart
    deployments:
      - {{provider: openai, model: gpt-a, base_url: "{a}/v1", weight: 1000000}}
      - {{provider: openai, model: gpt-b, base_url: "{b}/v1"}}
    fallbacks: [backup]
  - name: backup
    deployments: [{{provider: anthropic, model: claude-c, base_url: "{c}/v1"}}]
  - name: solo
    deployments: [{{provider: openai, model: gpt-a, base_url: "{a}/v1"}}]
  - name: refusing
    deployments:
      - {{provider: openai, model: gpt-dead, base_url: "http://127.0.0.1:{refused}/v1", weight: 1000000}}
      - {{provider: openai, model: gpt-b, base_url: "{b}/v1"}}
router: {policy}
"""


@pytest.fixture
def fleet(start_gateway: Callable[..., ServerThread], tmp_path: Path) -> Iterator[Fleet]:
    a, b, c = FakeOpenAI(), FakeOpenAI(), FakeAnthropic()
    with ServerThread(a) as sa, ServerThread(b) as sb, ServerThread(c) as sc:
        path = tmp_path / "routes.yaml"
        path.write_text(config_text(sa.url, sb.url, sc.url, free_port()))
        settings = Settings(
            default_provider="openai",
            openai_api_key="sk-upstream-secret",
            claude_api_key="sk-ant-secret",
            config_source=str(path),
            provider_timeout_seconds=1.0,
        )
        gateway = start_gateway(settings, store=SQLiteStore(str(tmp_path / "state.db")))
        yield Fleet(gateway, a, b, c)


def served(response: httpx.Response) -> tuple[str, str, str]:
    h = response.headers
    return h["x-tollgate-provider"], h["x-tollgate-model"], h["x-tollgate-attempts"]


def test_failover_to_a_second_deployment_is_invisible_and_booked_once(fleet: Fleet) -> None:
    fleet.a.enqueue(Script(status=503))
    raw = fleet.sdk().chat.completions.with_raw_response.create(
        model="smart", messages=MESSAGES, max_tokens=20
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello from fake"
    assert (raw.headers["x-tollgate-provider"], raw.headers["x-tollgate-model"]) == ("openai", "gpt-b")
    assert raw.headers["x-tollgate-attempts"] == "2"
    assert len(fleet.a.requests) == 1 and len(fleet.b.requests) == 1
    assert fleet.b.requests[0][2]["model"] == "gpt-b"
    (entry,) = fleet.audit()
    assert (entry["provider"], entry["model"], entry["status"]) == ("openai", "gpt-b", "ok")
    assert entry["details"] == {"deployment": "openai:gpt-b@127.0.0.1", "attempts": 2}
    pool = fleet.pool()
    assert pool["reserved"] == 0 and pool["used"] == 11 + 3 and pool["open_reservations"] == 0


def test_streamed_failover_with_the_sdk(fleet: Fleet) -> None:
    fleet.a.enqueue(Script(status=502))
    stream = fleet.sdk().chat.completions.create(
        model="smart", messages=MESSAGES, max_tokens=20, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from fake"
    usage_chunk = chunks[-1].model_dump()
    assert usage_chunk["tollgate"]["provider"] == "openai" and usage_chunk["tollgate"]["model"] == "gpt-b"
    assert usage_chunk["tollgate"]["attempts"] == 2
    (entry,) = fleet.audit()
    assert entry["model"] == "gpt-b" and entry["details"]["attempts"] == 2


def test_fallback_to_another_provider_and_what_was_tried(fleet: Fleet) -> None:
    fleet.a.enqueue(Script(status=503))
    fleet.b.enqueue(Script(status=500))
    response = fleet.chat()
    assert response.status_code == 200, response.text
    assert served(response) == ("claude", "claude-c", "3")
    assert fleet.c.requests[0][2]["model"] == "claude-c"
    (entry,) = fleet.audit()
    assert (entry["provider"], entry["model"]) == ("claude", "claude-c")
    metrics = httpx.get(f"{fleet.url}/metrics").text
    assert 'tollgate_fallbacks_total{provider="claude",model="claude-c"} 1' in metrics
    assert 'tollgate_retries_total{provider="openai",model="gpt-a"} 1' in metrics


def test_every_attempt_failing_returns_the_last_error_listing_them(fleet: Fleet) -> None:
    fleet.a.enqueue(Script(status=503))
    fleet.b.enqueue(Script(status=503))
    fleet.c.enqueue(Script(status=529))
    response = fleet.chat()
    assert response.status_code == 503, response.text
    message = response.json()["error"]["message"]
    assert "3 attempts failed" in message
    for tried in (
        "openai:gpt-a@127.0.0.1 503",
        "openai:gpt-b@127.0.0.1 503",
        "claude:claude-c@127.0.0.1 529",
    ):
        assert tried in message
    assert "sk-" not in message and "/v1" not in message
    assert response.headers["x-tollgate-attempts"] == "3"
    (entry,) = fleet.audit()
    assert entry["status"] == "provider_unavailable" and entry["details"]["attempts"] == 3
    assert fleet.pool()["reserved"] == 0


def test_a_bad_request_is_never_retried(fleet: Fleet) -> None:
    fleet.a.enqueue(Script(status=400, error_message="bad field"))
    response = fleet.chat()
    assert response.status_code == 400 and "bad field" in response.json()["error"]["message"]
    assert fleet.b.requests == [] and fleet.c.requests == []
    assert response.headers["x-tollgate-attempts"] == "1"


def test_retry_after_is_honoured_up_to_its_cap(fleet: Fleet) -> None:
    fleet.a.enqueue(Script(status=429, headers={"retry-after": "1"}))
    started = time.monotonic()
    response = fleet.chat("solo")  # one deployment: the retry goes to A again, after Retry-After
    assert response.status_code == 200, response.text
    assert time.monotonic() - started >= 0.9
    assert served(response) == ("openai", "gpt-a", "2") and len(fleet.a.requests) == 2
    time.sleep(0.7)  # A's cooldown (allowed_failures 1) is over
    fleet.a.enqueue(Script(status=429, headers={"retry-after": "30"}))  # over retry_after_max_seconds
    started = time.monotonic()
    response = fleet.chat()
    assert time.monotonic() - started < 1.0  # moved on at once instead of waiting 30 s
    assert served(response) == ("openai", "gpt-b", "2")


def test_cooldown_skips_a_failing_deployment_then_one_probe_brings_it_back(fleet: Fleet) -> None:
    fleet.a.enqueue(Script(status=503))
    assert served(fleet.chat()) == ("openai", "gpt-b", "2")  # A failed once: allowed_failures 1 -> cooldown
    assert served(fleet.chat()) == ("openai", "gpt-b", "1")  # A skipped while B is healthy
    assert len(fleet.a.requests) == 1
    deployments = httpx.get(f"{fleet.url}/diagnostics/providers").json()["providers"]
    a = next(d for d in deployments if d["deployment"] == "openai:gpt-a@127.0.0.1")
    assert a["state"] == "cooldown" and a["consecutive_failures"] == 1 and "503" in a["last_error"]
    assert "sk-upstream-secret" not in str(deployments)
    time.sleep(0.7)
    assert served(fleet.chat()) == ("openai", "gpt-a", "1")  # the half-open probe succeeds
    deployments = httpx.get(f"{fleet.url}/diagnostics/providers").json()["providers"]
    a = next(d for d in deployments if d["deployment"] == "openai:gpt-a@127.0.0.1")
    assert a["state"] == "healthy" and a["consecutive_failures"] == 0
    assert (
        'tollgate_cooldowns_total{provider="openai",model="gpt-a"} 1'
        in httpx.get(f"{fleet.url}/metrics").text
    )


def test_no_retry_once_the_first_byte_was_sent(fleet: Fleet) -> None:
    fleet.a.enqueue(Script(texts=["one", "two", "three"], fail_after=1))
    with httpx.stream(
        "POST",
        f"{fleet.url}/v1/chat/completions",
        json={"model": "smart", "messages": MESSAGES, "stream": True},
        timeout=20,
    ) as response:
        assert response.status_code == 200
        body = "".join(response.iter_text())
    assert '"content": "one"' in body.replace('":"', '": "') or '"content":"one"' in body
    assert '"error"' in body and "[DONE]" not in body
    assert fleet.b.requests == [] and fleet.c.requests == []
    (entry,) = fleet.audit()
    assert entry["status"] == "upstream_error" and entry["model"] == "gpt-a"


def test_refused_connections_and_timeouts_fail_over(fleet: Fleet) -> None:
    response = fleet.chat("refusing")
    assert served(response) == ("openai", "gpt-b", "2")
    fleet.a.enqueue(Script(initial_delay=2.0))  # past provider_timeout_seconds (1 s)
    response = fleet.chat()
    assert served(response) == ("openai", "gpt-b", "2")


def test_anthropic_sdk_on_messages_fails_over(fleet: Fleet) -> None:
    fleet.a.enqueue(Script(status=503))
    client = anthropic.Anthropic(base_url=fleet.url, api_key="open-mode", max_retries=0)
    raw = client.messages.with_raw_response.create(
        model="smart", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    )
    message = raw.parse()
    assert message.content[0].text == "Hello from fake"  # type: ignore[union-attr]
    assert raw.headers["x-tollgate-model"] == "gpt-b" and raw.headers["x-tollgate-attempts"] == "2"
    with client.messages.stream(
        model="smart", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        fleet.a.enqueue(Script(status=503))
        text = "".join(stream.text_stream)
    assert text == "Hello from fake"


def test_embeddings_fail_over_too(fleet: Fleet) -> None:
    fleet.a.enqueue(Script(status=503))
    raw = fleet.sdk().embeddings.with_raw_response.create(model="smart", input=["hi"])
    assert len(raw.parse().data) == 1
    assert raw.headers["x-tollgate-model"] == "gpt-b" and raw.headers["x-tollgate-attempts"] == "2"


def test_models_lists_the_public_names(fleet: Fleet) -> None:
    models = {m["id"]: m["owned_by"] for m in httpx.get(f"{fleet.url}/v1/models").json()["data"]}
    assert models["smart"] == "tollgate" and models["backup"] == "tollgate"
    assert models["openai/gpt-4o-mini"] == "openai"  # today's entries stay


def test_each_agent_loop_turn_is_its_own_exchange_with_failover(fleet: Fleet) -> None:
    fleet.a.script = Script(texts=["working"])
    fleet.a.enqueue(Script(texts=["working"]), Script(status=503))  # turn 2's first attempt fails
    response = fleet.chat(loop_mode="basic", loop_max_turns=2)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tollgate"]["turns"] == 2
    entries = fleet.audit()
    assert [(e["request_id"].rsplit(":", 1)[1], e["model"]) for e in entries] == [
        ("1", "gpt-a"),
        ("2", "gpt-b"),
    ]
    assert entries[1]["details"]["attempts"] == 2
    assert fleet.pool()["reserved"] == 0
