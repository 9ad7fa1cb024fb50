"""POST /v1/messages as current Claude Code speaks it, routed to Anthropic, OpenAI and Bedrock fakes:
Anthropic-only fields, thinking signatures on later turns, count_tokens, and the HEAD probes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import pytest

from tests.fakes.server import ServerThread
from tests.integration import test_messages_api as base
from tests.integration.test_messages_api import HI, TOOLS, Upstream, settings_for

# the Messages suite's fixtures: one fake upstream per wire format, the gateway before it, the SDK client
upstream, gateway, client = base.upstream, base.gateway, base.client

BETAS = "claude-code-20250219,interleaved-thinking-2025-05-14,effort-2025-11-24,context-management-2025-06-27"
SIGNATURE = "EqQBCkYIBxgCKkC+sig/with+base64=="
CACHE = {"type": "ephemeral"}


def claude_code_body() -> dict[str, Any]:
    """The shape of Claude Code 2.1's first request (recorded), shortened."""
    return {
        "model": "auto",
        "max_tokens": 64,
        "stream": True,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1"},
            {"type": "text", "text": "You are a Claude agent.", "cache_control": CACHE},
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "say pong"}]},
            {
                "role": "system",
                "content": [{"type": "text", "text": "# Environment", "cache_control": CACHE}],
            },
        ],
        "tools": [{**TOOLS[0], "defer_loading": True, "cache_control": CACHE}],
        "metadata": {"user_id": '{"session_id": "s1"}'},
        "thinking": {"type": "adaptive", "display": "omitted"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "medium"},
        "brand_new_field": {"x": 1},
    }


def test_claude_code_request_is_served(gateway: ServerThread, upstream: Upstream) -> None:
    upstream.text(["PONG"])
    response = httpx.post(
        f"{gateway.url}/v1/messages?beta=true",
        json=claude_code_body(),
        headers={"authorization": "Bearer x", "anthropic-beta": BETAS, "anthropic-version": "2023-06-01"},
        timeout=20,
    )
    assert response.status_code == 200, response.text
    assert '"text":"PONG"' in response.text or '"text_delta","text":"PONG"' in response.text
    body = upstream.last_body()
    raw = json.dumps(body, default=str)
    if upstream.provider == "claude":
        headers = upstream.fake.requests[-1][1]  # type: ignore[union-attr]
        assert headers["anthropic-beta"] == BETAS
        assert body["system"][1] == {
            "type": "text",
            "text": "You are a Claude agent.",
            "cache_control": CACHE,
        }
        assert body["messages"][1]["role"] == "system"  # kept in place
        assert body["messages"][1]["content"][0]["cache_control"] == CACHE
        assert body["tools"][0]["defer_loading"] is True and body["tools"][0]["cache_control"] == CACHE
        for name in ("thinking", "context_management", "output_config", "metadata", "brand_new_field"):
            assert body[name] == claude_code_body()[name]
    elif upstream.provider == "openai":
        assert "reasoning_effort" not in body  # gpt-4o-mini refuses it (see the o4-mini test below)
        assert [m["role"] for m in body["messages"]] == ["system", "user", "system"]
        for name in ("thinking", "context_management", "output_config", "metadata", "brand_new_field"):
            assert name not in body
        assert "cache_control" not in raw and "defer_loading" not in raw
    else:
        assert [m["role"] for m in body["messages"]] == ["user"]  # the system turn went to the prompt
        assert body["system"][-2:] == [{"text": "# Environment"}, {"cachePoint": {"type": "default"}}]
        assert {"cachePoint": {"type": "default"}} in body["toolConfig"]["tools"]
        extra = body["additionalModelRequestFields"]
        assert extra["thinking"] == {"type": "adaptive", "display": "omitted"}
        assert extra["output_config"] == {"effort": "medium"}
        assert extra["anthropic_beta"] == ["interleaved-thinking-2025-05-14", "effort-2025-11-24"]
        assert "brand_new_field" not in raw and "context_management" not in raw


def _think(upstream: Upstream) -> None:
    if upstream.provider == "bedrock":
        upstream.fake.script(texts=["Answer."], reasoning=("Let me think.", SIGNATURE))  # type: ignore[union-attr]
    else:
        upstream.text(["Answer."])
        if upstream.provider == "claude":
            upstream.fake.thinking = ("Let me think.", SIGNATURE)  # type: ignore[union-attr]


@pytest.mark.parametrize("upstream", ["claude", "bedrock"], indirect=True)
@pytest.mark.parametrize("stream", [False, True])
def test_thinking_signature_comes_back_unchanged(
    client: anthropic.Anthropic, upstream: Upstream, stream: bool
) -> None:
    _think(upstream)
    request: dict[str, Any] = {
        "model": "auto",
        "max_tokens": 2048,
        "messages": HI,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    if stream:
        with client.messages.stream(**request) as events:
            first = events.get_final_message()
    else:
        first = client.messages.create(**request)
    thinking = first.content[0]
    assert thinking.type == "thinking"
    assert (thinking.thinking, thinking.signature) == ("Let me think.", SIGNATURE)
    assert first.content[1].type == "text" and first.content[1].text == "Answer."
    assistant = {"role": "assistant", "content": [block.model_dump() for block in first.content]}
    upstream.text(["Again."])
    client.messages.create(**{**request, "messages": [*HI, assistant, {"role": "user", "content": "and?"}]})
    sent = upstream.last_body()["messages"][1]["content"][0]
    if upstream.provider == "claude":
        assert sent == {"type": "thinking", "thinking": "Let me think.", "signature": SIGNATURE}
        assert upstream.last_body()["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    else:
        assert sent == {
            "reasoningContent": {"reasoningText": {"text": "Let me think.", "signature": SIGNATURE}}
        }


@pytest.mark.parametrize("upstream", ["openai"], indirect=True)
def test_thinking_blocks_are_dropped_for_openai(client: anthropic.Anthropic, upstream: Upstream) -> None:
    upstream.text(["ok"])
    thinking = {"type": "thinking", "thinking": "hm", "signature": SIGNATURE}
    redacted = {"type": "redacted_thinking", "data": "b3BhcXVl"}
    assistant = {"role": "assistant", "content": [thinking, redacted, {"type": "text", "text": "hi"}]}
    client.messages.create(
        model="auto",
        max_tokens=8,
        messages=[*HI, assistant, {"role": "user", "content": "again"}],  # type: ignore[list-item]
        thinking={"type": "enabled", "budget_tokens": 20000},
    )
    body = upstream.last_body()
    assert body["messages"][1] == {"role": "assistant", "content": "hi"}
    assert "reasoning_effort" not in body  # gpt-4o-mini takes none; the budget would have meant "high"


@pytest.mark.parametrize("upstream", ["openai"], indirect=True)
@pytest.mark.parametrize(
    ("fields", "effort"),
    [
        ({"output_config": {"effort": "medium"}, "thinking": {"type": "adaptive"}}, "medium"),
        ({"output_config": {"effort": "max"}}, "high"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "low"),
        ({"thinking": {"type": "enabled", "budget_tokens": 32000}}, "high"),
        ({"thinking": {"type": "disabled"}, "output_config": {"effort": "low"}}, None),
    ],
)
def test_effort_is_reasoning_effort_for_openai_reasoning_models(
    client: anthropic.Anthropic, upstream: Upstream, fields: dict[str, Any], effort: str | None
) -> None:
    upstream.text(["ok"])
    client.messages.create(model="openai/o4-mini", max_tokens=8, messages=HI, extra_body=fields)
    assert upstream.last_body().get("reasoning_effort") == effort


def test_count_tokens(client: anthropic.Anthropic, upstream: Upstream) -> None:
    raw = client.messages.with_raw_response.count_tokens(
        model="auto", system="be brief", messages=HI, tools=TOOLS
    )
    counted = raw.parse()
    extension = (counted.model_extra or {})["tollgate"]
    assert raw.headers["x-tollgate-provider"] == upstream.provider
    if upstream.provider == "openai":
        assert extension == {"estimated": True} and counted.input_tokens > 10
        assert upstream.fake.requests == []  # type: ignore[union-attr]
        return
    assert (counted.input_tokens, extension) == (42, {"estimated": False})
    if upstream.provider == "claude":
        path, _, body = upstream.fake.requests[-1]  # type: ignore[union-attr]
        assert path == "/v1/messages/count_tokens"
        assert set(body) == {"model", "system", "messages", "tools"}  # no max_tokens, no stream
    else:
        recorded = upstream.fake.requests[-1]  # type: ignore[union-attr]
        assert recorded.operation == "count-tokens"
        assert recorded.body["input"]["converse"]["messages"][0]["role"] == "user"


@pytest.mark.parametrize("upstream", ["openai"], indirect=True)
def test_head_probes_answer_without_a_key(
    upstream: Upstream, start_gateway: Callable[..., ServerThread]
) -> None:
    keyed = start_gateway(settings_for(upstream, admin_key="admin-secret"), include_admin=True)
    httpx.post(
        f"{keyed.url}/admin/keys", json={"tenant": "acme"}, headers={"authorization": "Bearer admin-secret"}
    )
    for path in ("/", "/v1/messages", "/v1/messages?beta=true"):
        assert httpx.head(f"{keyed.url}{path}", timeout=10).status_code == 200
    refused = httpx.post(f"{keyed.url}/v1/messages?beta=true", json={"max_tokens": 8, "messages": HI})
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("upstream", ["claude"], indirect=True)
def test_count_tokens_estimates_where_the_upstream_has_no_endpoint(
    client: anthropic.Anthropic, upstream: Upstream
) -> None:
    upstream.fake.count_status = 404  # type: ignore[union-attr]
    counted = client.messages.count_tokens(model="auto", messages=HI)
    assert (counted.model_extra or {})["tollgate"] == {"estimated": True} and counted.input_tokens > 0


SERVER_USE = {
    "type": "server_tool_use",
    "id": "srvtoolu_1",
    "name": "web_search",
    "input": {"query": "tollgate"},
}
SEARCH_RESULT = {
    "type": "web_search_tool_result",
    "tool_use_id": "srvtoolu_1",
    "content": [
        {
            "type": "web_search_result",
            "url": "https://example.com/t",
            "title": "T",
            "encrypted_content": "Ej==",
        }
    ],
}


@pytest.mark.parametrize("upstream", ["claude"], indirect=True)
@pytest.mark.parametrize("stream", [False, True])
def test_server_tool_blocks_pass_through_whole(
    client: anthropic.Anthropic, upstream: Upstream, stream: bool
) -> None:
    """Anthropic's server tool blocks reach the client as they came and go back upstream unchanged."""
    upstream.text(["Found it."])
    upstream.fake.native = [SERVER_USE, SEARCH_RESULT]  # type: ignore[union-attr]
    request: dict[str, Any] = {
        "model": "auto",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "search"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}],
    }
    if stream:
        with client.messages.stream(**request) as events:
            first = events.get_final_message()
    else:
        first = client.messages.create(**request)
    content = [block.model_dump(exclude_none=True) for block in first.content]
    assert [block["type"] for block in content] == ["server_tool_use", "web_search_tool_result", "text"]
    assert content[0] == SERVER_USE
    assert content[1]["content"][0]["url"] == "https://example.com/t"
    upstream.fake.native = []  # type: ignore[union-attr]
    follow_up = [
        *request["messages"],
        {"role": "assistant", "content": content},
        {"role": "user", "content": "more"},
    ]
    client.messages.create(**{**request, "messages": follow_up})
    assert upstream.last_body()["messages"][1]["content"][:2] == content[:2]
    assert upstream.last_body()["tools"] == request["tools"]


@pytest.mark.parametrize("upstream", ["openai"], indirect=True)
def test_server_tool_blocks_and_documents_are_left_out_for_openai(
    client: anthropic.Anthropic, upstream: Upstream
) -> None:
    upstream.text(["ok"])
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}}
    messages: list[Any] = [
        {"role": "user", "content": "search"},
        {"role": "assistant", "content": [SERVER_USE, SEARCH_RESULT, {"type": "text", "text": "Found it."}]},
        {"role": "user", "content": [document, {"type": "text", "text": "and this?"}]},
    ]
    client.messages.create(model="auto", max_tokens=8, messages=messages)
    sent = upstream.last_body()["messages"]
    assert sent[1:] == [
        {"role": "assistant", "content": "Found it."},
        {"role": "user", "content": "and this?"},
    ]
