"""Open mode (no key yet, on loopback) serves this machine's own callers only, not a web page.

A page the operator visits can send a "simple" cross-origin POST to 127.0.0.1 (no preflight: a
``text/plain`` body) or, after a DNS rebinding, read from it under its own host name. Browsers name the page
in ``Origin`` and the rebound name in ``Host``; both refuse open mode, so such a caller meets the 401 that
any keyless caller meets once keys exist."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import ServerThread
from tollgate.config import Settings

BODY = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})


@pytest.fixture
def gateway(fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread]) -> ServerThread:
    return start_gateway(Settings(default_provider="llama_cpp", llama_cpp_base_url=fake_openai.url))


def chat(gateway: ServerThread, **headers: str) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/chat/completions", content=BODY, headers=headers, timeout=10)


def test_sdks_curl_and_the_console_are_served(gateway: ServerThread, fake_openai: FakeOpenAI) -> None:
    assert chat(gateway, **{"content-type": "application/json"}).status_code == 200
    port = gateway.url.rsplit(":", 1)[1]
    for origin in (gateway.url, f"http://localhost:{port}"):
        assert chat(gateway, origin=origin).status_code == 200, origin
    assert chat(gateway, host=f"localhost:{port}").status_code == 200
    assert len(fake_openai.requests) == 4


@pytest.mark.parametrize("origin", ["http://attacker.example", "null", "http://127.0.0.1.attacker.example"])
def test_a_cross_origin_simple_post_is_refused(
    gateway: ServerThread, fake_openai: FakeOpenAI, origin: str
) -> None:
    response = chat(gateway, origin=origin, **{"content-type": "text/plain"})
    assert response.status_code == 401, response.text
    assert response.json()["error"]["type"] == "authentication_error"
    assert fake_openai.requests == []


@pytest.mark.parametrize("path", ["/v1/models", "/v1/audit", "/metrics", "/diagnostics/providers"])
def test_a_rebound_host_name_reads_nothing(gateway: ServerThread, path: str) -> None:
    port = gateway.url.rsplit(":", 1)[1]
    response = httpx.get(f"{gateway.url}{path}", headers={"host": f"rebound.attacker.example:{port}"})
    assert response.status_code in (401, 404), (path, response.text)
    assert httpx.get(f"{gateway.url}{path}").status_code == 200, path
