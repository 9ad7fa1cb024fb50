"""/health, /v1/models, /metrics, /diagnostics/* and client-disconnect accounting on a real socket."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Script
from tests.fakes.server import ServerThread
from tollgate.config import Settings

MESSAGES = [{"role": "user", "content": "secret prompt text"}]


@pytest.fixture
def gateway(fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread]) -> ServerThread:
    settings = Settings(
        default_provider="openai",
        openai_api_key="sk-upstream-secret",
        openai_base_url=f"{fake_openai.url}/v1",
    )
    return start_gateway(settings)


def test_health_needs_nothing(gateway: ServerThread) -> None:
    body = httpx.get(f"{gateway.url}/health").json()
    assert body["status"] == "ok" and body["in_flight"] == 0
    assert body["version"] and body["uptime_seconds"] >= 0


def test_models_lists_configured_providers(gateway: ServerThread) -> None:
    ids = {m["id"] for m in httpx.get(f"{gateway.url}/v1/models").json()["data"]}
    assert "openai/gpt-4o-mini" in ids and "llama_cpp/smollm2" in ids
    assert not any(i.startswith(("claude/", "openrouter/")) for i in ids)  # no key, not configured


def test_metrics_count_requests_and_tokens(gateway: ServerThread) -> None:
    httpx.post(f"{gateway.url}/v1/chat/completions", json={"messages": MESSAGES}).raise_for_status()
    text = httpx.get(f"{gateway.url}/metrics").text
    assert 'tollgate_requests_total{provider="openai",model="gpt-4o-mini",status="ok"} 1' in text
    assert 'tollgate_tokens_in_total{provider="openai",model="gpt-4o-mini"} 11' in text
    assert 'tollgate_request_duration_seconds_count{provider="openai"} 1' in text


def test_metrics_do_not_grow_with_model_names_nobody_served(
    fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread]
) -> None:
    """Failed requests for invented models (ollama/<unique> answered 503) share the ``other`` label: a
    client cannot make /metrics (and memory) grow with names it chooses. A configured model keeps its
    name even when it fails, and a model an upstream answered is named as it answered."""
    settings = Settings(
        default_provider="openai",
        openai_api_key="sk-upstream-secret",
        openai_base_url=f"{fake_openai.url}/v1",
        ollama_base_url=fake_openai.url,  # type: ignore[attr-defined]
    )
    gateway = start_gateway(settings)
    fake_openai.script = Script(status=503)
    for i in range(40):
        body = {"model": f"ollama/invented-{i}", "messages": MESSAGES}
        assert httpx.post(f"{gateway.url}/v1/chat/completions", json=body).status_code == 503
    httpx.post(f"{gateway.url}/v1/chat/completions", json={"messages": MESSAGES})  # openai's default model
    fake_openai.script = Script()
    httpx.post(
        f"{gateway.url}/v1/chat/completions", json={"model": "openai/gpt-custom", "messages": MESSAGES}
    )
    text = httpx.get(f"{gateway.url}/metrics").text
    assert "invented-" not in text
    assert 'tollgate_requests_total{provider="ollama",model="other",status="provider_unavailable"} 40' in text
    assert 'tollgate_attempts_total{provider="ollama",model="other",result="failed"} 40' in text
    assert (
        'tollgate_requests_total{provider="openai",model="gpt-4o-mini",status="provider_unavailable"} 1'
        in text
    )
    assert 'tollgate_requests_total{provider="openai",model="gpt-custom",status="ok"} 1' in text


def test_diagnostics_never_show_secrets_or_prompts(gateway: ServerThread, fake_openai: FakeOpenAI) -> None:
    httpx.post(f"{gateway.url}/v1/chat/completions", json={"messages": MESSAGES})
    fake_openai.script = Script(status=500)
    httpx.post(f"{gateway.url}/v1/chat/completions", json={"messages": MESSAGES})
    providers = httpx.get(f"{gateway.url}/diagnostics/providers")
    requests = httpx.get(f"{gateway.url}/diagnostics/requests")
    for response in (providers, requests):
        assert "sk-upstream-secret" not in response.text
        assert "secret prompt text" not in response.text
    openai_health = next(p for p in providers.json()["providers"] if p["provider"] == "openai")
    assert openai_health["configured"] is True and openai_health["consecutive_failures"] == 1
    assert "500" in openai_health["last_error"]
    assert openai_health["latency_p50_ms"] is not None and openai_health["state"] == "healthy"
    recent = requests.json()
    assert len(recent["successes"]) == 1 and recent["failures"][0]["status"] == "upstream_error"


def test_client_disconnect_mid_stream_is_still_recorded(
    gateway: ServerThread, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = Script(texts=["a"] * 20, delay=0.2)
    raw = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n"
    )
    body = b'{"stream": true, "messages": [{"role": "user", "content": "hi"}]}'
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(raw % len(body) + body)
        received = b""
        while b"data: " not in received:  # wait for the first chunk, then hang up
            part = sock.recv(4096)
            assert part, "gateway closed the stream before the first chunk"
            received += part
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        recent = httpx.get(f"{gateway.url}/diagnostics/requests").json()
        if recent["failures"]:
            break
        time.sleep(0.05)
    assert recent["failures"][0]["status"] == "client_closed"
    assert httpx.get(f"{gateway.url}/health").json()["in_flight"] == 0
