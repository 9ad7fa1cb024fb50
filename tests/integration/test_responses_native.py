"""POST /v1/responses to the ``openai`` provider: OpenAI's own /v1/responses, natively (reasoning items and
encrypted content preserved, hosted and namespace tools passed on), still charged, audited and capped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fakes.openai_responses_upstream import FakeOpenAIResponses
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import ADMIN_KEY, AUDIT_KEY, Gateway
from tollgate.config import Settings
from tollgate.store.sqlite import SQLiteStore

CODEX_LIKE: dict[str, Any] = {
    "model": "gpt-5",
    "input": [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "be terse"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
    ],
    "tools": [
        {"type": "function", "name": "exec_command", "parameters": {"type": "object", "properties": {}}},
        {"type": "namespace", "name": "agents", "tools": [{"type": "function", "name": "spawn"}]},
        {"type": "web_search", "external_web_access": False},
    ],
    "store": False,
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "thread-1",
    "reasoning": {"effort": "low", "summary": "auto"},
}


@pytest.fixture
def fake() -> Iterator[FakeOpenAIResponses]:
    fake = FakeOpenAIResponses()
    with ServerThread(fake) as server:
        fake.url = server.url  # type: ignore[attr-defined]
        yield fake


@pytest.fixture
def gw(fake: FakeOpenAIResponses, start_gateway: Callable[..., ServerThread], tmp_path: Path) -> Gateway:
    settings = Settings(
        default_provider="openai",
        openai_api_key="sk-upstream",
        openai_base_url=f"{fake.url}/v1",  # type: ignore[attr-defined]
        admin_key=ADMIN_KEY,
        audit_key=AUDIT_KEY,
        key_cache_seconds=0,
        default_max_tokens=100,
    )
    server = start_gateway(settings, include_admin=True, store=SQLiteStore(str(tmp_path / "native.db")))
    return Gateway(server, fake.chat)


def client(gw: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=20)


def test_streamed_natively_with_reasoning_preserved(gw: Gateway, fake: FakeOpenAIResponses) -> None:
    key = gw.new_key("acme")
    events = list(client(gw, key).responses.create(**CODEX_LIKE, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    reasoning = next(e.item for e in events if e.type == "response.output_item.done")
    assert reasoning.type == "reasoning" and reasoning.encrypted_content == "gAAAA-secret-blob"
    final = events[-1].response
    assert final.id == events[0].response.id  # tollgate's id, first to last
    assert final.output_text == "native hello"
    assert final.usage is not None and final.usage.input_tokens_details.cached_tokens == 5
    path, headers, body = fake.requests[-1]
    assert path == "/v1/responses" and headers["authorization"] == "Bearer sk-upstream"
    assert body["include"] == ["reasoning.encrypted_content"] and body["prompt_cache_key"] == "thread-1"
    assert [t["type"] for t in body["tools"]] == ["function", "namespace", "web_search"]
    assert body["max_output_tokens"] == 100 and body["stream"] is True and body["store"] is False
    entries = gw.get(key, "/v1/audit").json()["entries"]
    assert [(e["prompt_tokens"], e["completion_tokens"]) for e in entries] == [(21, 9)]


def test_buffered_natively(gw: Gateway, fake: FakeOpenAIResponses) -> None:
    fake.tool_call = {"call_id": "call_9", "name": "exec_command", "arguments": '{"cmd": "ls"}'}
    response = client(gw, gw.new_key("acme")).responses.create(**CODEX_LIKE)
    assert [o.type for o in response.output] == ["reasoning", "function_call"]
    assert response.output[1].call_id == "call_9"  # type: ignore[union-attr]
    assert response.id.startswith("resp_") and response.id != "resp_upstream_1"
    assert response.usage is not None and response.usage.output_tokens_details.reasoning_tokens == 4


def test_native_upstream_failure_is_response_failed(gw: Gateway, fake: FakeOpenAIResponses) -> None:
    fake.fail = True
    events = list(client(gw, gw.new_key("acme")).responses.create(**CODEX_LIKE, stream=True))
    assert events[-1].type == "response.failed"
    assert "boom" in events[-1].response.error.message  # type: ignore[union-attr]


def test_previous_response_id_is_translated_for_openai_too(gw: Gateway, fake: FakeOpenAIResponses) -> None:
    sdk = client(gw, gw.new_key("acme"))
    first = sdk.responses.create(model="gpt-5", input="remember 7", store=True)
    assert first.output_text == "native hello"
    second = sdk.responses.create(model="gpt-5", input="what number?", previous_response_id=first.id)
    assert second.output_text == "Hello from fake"  # the chat translation, over /v1/chat/completions
    path, _, body = fake.requests[-1]
    assert path == "/v1/chat/completions"
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == "native hello"
