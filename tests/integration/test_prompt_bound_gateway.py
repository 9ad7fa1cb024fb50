"""The prompt bound against a 100,000-token pool over a real socket (SQLite, a fake OpenAI that also has
``/v1/responses``): 2 MB the upstream would receive is refused with a 429 before any upstream call, in
whatever part of the request it hides, as 2 MB of plain text is."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openai_responses_upstream import FakeOpenAIResponses
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import ADMIN_KEY, AUDIT_KEY, Gateway
from tollgate.config import Settings
from tollgate.store.sqlite import SQLiteStore

MB2 = 2_000_000
PDF = base64.b64encode(b"%PDF-1.7 " + b"x" * MB2).decode()


@pytest.fixture
def gw(start_gateway: Callable[..., ServerThread], tmp_path: Path) -> Iterator[Gateway]:
    fake = FakeOpenAIResponses()
    with ServerThread(fake) as upstream:
        settings = Settings(
            default_provider="openai",
            openai_api_key="sk-upstream",
            openai_base_url=f"{upstream.url}/v1",
            admin_key=ADMIN_KEY,
            audit_key=AUDIT_KEY,
            key_cache_seconds=0,
            default_max_tokens=50,
        )
        store = SQLiteStore(str(tmp_path / "state.db"))
        yield Gateway(start_gateway(settings, include_admin=True, store=store), fake.chat)


def _post(gw: Gateway, path: str, key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{gw.url}{path}", json=body, headers={"x-api-key": key}, timeout=30)


def _messages(content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": content}]}


DOCUMENTS = {
    "text": {"type": "text", "text": "y" * MB2},
    "pdf": {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
    "text-document": {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "y" * MB2},
    },
}


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_two_megabytes_in_any_block_of_a_messages_request_is_refused(gw: Gateway, name: str) -> None:
    key = gw.new_key("acme", pool="team")
    gw.set_budget("acme", "team", 100_000)
    small = _post(gw, "/v1/messages", key, _messages([{"type": "text", "text": "hi"}]))
    assert small.status_code == 200, small.text
    calls = len(gw.upstream.requests)
    refused = _post(gw, "/v1/messages", key, _messages([{"type": "text", "text": "read"}, DOCUMENTS[name]]))
    assert refused.status_code == 429, refused.text[:300]
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert len(gw.upstream.requests) == calls  # no upstream call


HELLO = {"type": "message", "role": "user", "content": "hello"}
SUMMARY = [{"type": "summary_text", "text": "s" * MB2}]
RESPONSES = {
    "text": {"input": [{"type": "message", "role": "user", "content": "y" * MB2}]},
    "reasoning-summary": {"input": [{"type": "reasoning", "id": "rs_1", "summary": SUMMARY}, HELLO]},
    "web-search-call": {
        "input": [
            {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"q": "q" * MB2}},
            HELLO,
        ]
    },
    "unknown-field": {"input": [HELLO], "brand_new_field": "u" * MB2},
}


@pytest.mark.parametrize("name", list(RESPONSES))
def test_two_megabytes_anywhere_in_a_native_responses_body_is_refused(gw: Gateway, name: str) -> None:
    key = gw.new_key("acme", pool="team")
    gw.set_budget("acme", "team", 100_000)
    small = _post(gw, "/v1/responses", key, {"model": "gpt-4o-mini", "input": [HELLO], "store": False})
    assert small.status_code == 200, small.text
    assert gw.upstream.requests[-1][0] == "/v1/responses"  # served natively
    calls = len(gw.upstream.requests)
    body = {"model": "gpt-4o-mini", "store": False, **RESPONSES[name]}
    refused = _post(gw, "/v1/responses", key, body)
    assert refused.status_code == 429, refused.text[:300]
    assert len(gw.upstream.requests) == calls  # no upstream call
