"""Anthropic-only parts of a Messages request through the internal request to each adapter, and thinking
blocks back: pure functions, no I/O."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tollgate.api.body import validate
from tollgate.api.messages import anthropic_error
from tollgate.errors import BadRequest
from tollgate.lifecycle import Outcome
from tollgate.providers import anthropic as anthropic_adapter
from tollgate.providers import anthropic_response, bedrock_mapping, openai_compat
from tollgate.providers.anthropic_native import beta_headers
from tollgate.providers.base import ChatCall, NativeBlock, TextDelta, ThinkingDelta, Usage
from tollgate.providers.bedrock_native import additional_fields, reasoning_block, thinking_delta
from tollgate.schemas.anthropic import MessagesRequest
from tollgate.schemas.native import AnthropicOptions, parse_betas
from tollgate.schemas.openai import ChatCompletionRequest, ThinkingBlock
from tollgate.streaming import ResponseBuilder
from tollgate.wire.anthropic_messages import AnthropicEncoder, render_message
from tollgate.wire.anthropic_messages_request import to_chat

SIG = "EqQBCkYI+sig/=="
THINKING = {"type": "thinking", "thinking": "Let me see.", "signature": SIG}
REDACTED = {"type": "redacted_thinking", "data": base64.b64encode(b"\x00opaque\xff").decode()}
CACHE = {"type": "ephemeral"}


def chat(body: dict[str, Any], betas: tuple[str, ...] = ()) -> ChatCompletionRequest:
    return to_chat(validate(MessagesRequest, {"model": "m", "max_tokens": 10, **body}), betas)


def call(request: ChatCompletionRequest, provider: str = "claude", model: str = "m") -> ChatCall:
    return ChatCall("req1", provider, model, 10, request)


CONVERSATION: dict[str, Any] = {
    "system": [{"type": "text", "text": "sys", "cache_control": CACHE}],
    "messages": [
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "reminder"},
        {
            "role": "assistant",
            "content": [THINKING, REDACTED, {"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "ok", "cache_control": CACHE}
            ],
        },
    ],
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "top_k": 5,
}


def test_anthropic_upstream_gets_everything_in_place() -> None:
    body = anthropic_adapter.to_upstream(call(chat(CONVERSATION)))
    assert body["system"] == [{"type": "text", "text": "sys", "cache_control": CACHE}]
    assert [m["role"] for m in body["messages"]] == ["user", "system", "assistant", "user"]
    assert body["messages"][2]["content"][:2] == [THINKING, REDACTED]  # first and byte-exact
    assert body["messages"][3]["content"][0]["cache_control"] == CACHE
    assert (body["thinking"], body["top_k"]) == (CONVERSATION["thinking"], 5)


def test_openai_client_system_messages_still_fold_for_anthropic() -> None:
    request = ChatCompletionRequest.model_validate(
        {"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "late"}]}
    )
    body = anthropic_adapter.to_upstream(call(request))
    assert body["system"] == "late" and [m["role"] for m in body["messages"]] == ["user"]


def test_betas_are_forwarded_as_sent() -> None:
    names = parse_betas(" a-1 ,b-2,,a-1")
    assert names == ("a-1", "b-2")
    options = chat({"messages": [{"role": "user", "content": "x"}]}, names).anthropic
    assert beta_headers(options) == {"anthropic-beta": "a-1,b-2"}
    assert beta_headers(chat({"messages": [{"role": "user", "content": "x"}]}).anthropic) == {}


def test_openai_compatible_upstream_gets_none_of_it() -> None:
    body = openai_compat.to_upstream(call(chat(CONVERSATION), "openrouter"))
    raw = json.dumps(body)
    assert "signature" not in raw and "cache_control" not in raw and "top_k" not in raw
    assert [m["role"] for m in body["messages"]] == ["system", "user", "system", "assistant", "tool"]
    assert body["reasoning_effort"] == "low"  # OpenRouter takes it; a 1024-token budget is "low"


def test_bedrock_gets_reasoning_content_cache_points_and_claude_fields() -> None:
    request = chat(CONVERSATION, ("interleaved-thinking-2025-05-14", "claude-code-20250219"))
    kwargs = bedrock_mapping.to_converse(call(request, "bedrock", "us.anthropic.claude-sonnet-4-5-v1:0"))
    assert kwargs["system"] == [{"text": "sys"}, {"cachePoint": {"type": "default"}}, {"text": "reminder"}]
    assistant = kwargs["messages"][1]["content"]
    assert assistant[0] == {"reasoningContent": {"reasoningText": {"text": "Let me see.", "signature": SIG}}}
    assert assistant[1] == {"reasoningContent": {"redactedContent": b"\x00opaque\xff"}}
    assert kwargs["messages"][2]["content"][1] == {"cachePoint": {"type": "default"}}
    assert kwargs["additionalModelRequestFields"] == {
        "thinking": CONVERSATION["thinking"],
        "anthropic_beta": ["interleaved-thinking-2025-05-14"],
    }
    nova = bedrock_mapping.to_converse(call(request, "bedrock", "us.amazon.nova-pro-v1:0"))
    assert "additionalModelRequestFields" not in nova  # Claude's own fields are for Claude only
    assert {"cachePoint": {"type": "default"}} in nova["system"]  # Nova caches prompts too
    llama = bedrock_mapping.to_converse(call(request, "bedrock", "meta.llama3-1-8b-instruct-v1:0"))
    assert "cachePoint" not in json.dumps(llama, default=str)  # it would refuse them
    assert llama["system"] == [{"text": "sys"}, {"text": "reminder"}]


def test_bedrock_reasoning_round_trips_redacted_bytes() -> None:
    block = ThinkingBlock.model_validate(REDACTED)
    back = thinking_delta(0, reasoning_block(block)["reasoningContent"])
    assert back == ThinkingDelta(0, redacted=REDACTED["data"])
    assert (
        additional_fields(call(ChatCompletionRequest.model_validate({"messages": [{"role": "user"}]}))) == {}
    )


@pytest.mark.parametrize(
    ("options", "effort"),
    [
        (AnthropicOptions(output_config={"effort": "high"}), "high"),
        (AnthropicOptions(output_config={"effort": "max"}), "high"),
        (AnthropicOptions(thinking={"type": "adaptive"}), None),
        (AnthropicOptions(thinking={"type": "enabled", "budget_tokens": 8000}), "medium"),
        (AnthropicOptions(thinking={"type": "disabled"}, output_config={"effort": "low"}), None),
        (AnthropicOptions(), None),
    ],
)
def test_reasoning_effort(options: AnthropicOptions, effort: str | None) -> None:
    assert options.reasoning_effort() == effort


def test_anthropic_stream_thinking_events_become_thinking_deltas() -> None:
    parser = anthropic_response.StreamParser()
    start = {"index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}
    assert parser.parse_event("content_block_start", start) == [ThinkingDelta(0)]
    text = {"index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}}
    assert parser.parse_event("content_block_delta", text) == [ThinkingDelta(0, "hm")]
    signature = {"index": 0, "delta": {"type": "signature_delta", "signature": SIG}}
    assert parser.parse_event("content_block_delta", signature) == [ThinkingDelta(0, signature=SIG)]
    redacted = {"index": 1, "content_block": REDACTED}
    assert parser.parse_event("content_block_start", redacted) == [
        ThinkingDelta(1, redacted=REDACTED["data"])
    ]
    whole = anthropic_response.parse_response({"content": [THINKING, {"type": "text", "text": "a"}]})
    assert whole[1:3] == [ThinkingDelta(0, "Let me see.", SIG), TextDelta("a")]


def test_thinking_is_rendered_and_streamed_with_its_signature() -> None:
    request = ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": "hi"}]})
    chunks = [
        ThinkingDelta(0),
        ThinkingDelta(0, "Let "),
        ThinkingDelta(0, "me see."),
        ThinkingDelta(0, signature=SIG),
    ]
    chunks += [ThinkingDelta(1, redacted=REDACTED["data"]), TextDelta("ok")]
    builder = ResponseBuilder(call(request))
    for chunk in chunks:
        builder.add(chunk)
    message = render_message(builder, Outcome(status="ok", usage=Usage(1, 1)), {})
    assert message["content"] == [THINKING, REDACTED, {"type": "text", "text": "ok"}]
    encoder = AnthropicEncoder(call(request), anthropic_error)
    frames = b"".join(frame for chunk in chunks for frame in encoder.chunk(chunk)).decode()
    events = [json.loads(line[6:]) for line in frames.splitlines() if line.startswith("data: ")]
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert starts == [
        {"type": "thinking", "thinking": "", "signature": ""},
        REDACTED,
        {"type": "text", "text": ""},
    ]
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    assert {"type": "signature_delta", "signature": SIG} in deltas
    assert [e["index"] for e in events if e["type"] == "content_block_stop"] == [0, 1]


def test_local_upstreams_get_system_turns_folded_into_the_prompt() -> None:
    request = chat(CONVERSATION)
    for provider in ("llama_cpp", "ollama"):
        body = openai_compat.to_upstream(call(request, provider))
        assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool"]
        assert body["messages"][0]["content"] == "sys\n\nreminder"
    in_place = openai_compat.to_upstream(call(request, "openrouter"))
    assert [m["role"] for m in in_place["messages"]] == ["system", "user", "system", "assistant", "tool"]


def test_tool_results_with_non_text_blocks_go_to_anthropic_as_sent() -> None:
    reference = {"type": "tool_reference", "tool_name": "Write"}
    content = [{"type": "text", "text": "found"}, reference]
    result = {"type": "tool_result", "tool_use_id": "t1", "content": content}
    request = chat(
        {
            "messages": [
                {"role": "user", "content": "find"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
                },
                {"role": "user", "content": [result]},
            ]
        }
    )
    body = anthropic_adapter.to_upstream(call(request))
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": content}
    ]
    other = openai_compat.to_upstream(call(request, "openai"))
    assert other["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": "found"}


def test_openai_clients_thinking_fields_are_still_ignored() -> None:
    """The carried fields have names no OpenAI-style client sends (Ollama's ``thinking`` is a string)."""
    request = ChatCompletionRequest.model_validate(
        {"messages": [{"role": "assistant", "content": "a", "thinking": "hm", "reasoning_content": "x"}]}
    )
    assert request.messages[0].thinking_blocks is None and request.anthropic is None


def test_server_tools_go_to_anthropic_only() -> None:
    web_search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "tools": [web_search],
        "tool_choice": {"type": "tool", "name": "web_search"},
    }
    request = chat(body)
    assert anthropic_adapter.to_upstream(call(request))["tools"] == [web_search]
    openai = openai_compat.to_upstream(call(request, "openai"))
    assert "tools" not in openai and "tool_choice" not in openai
    assert "toolConfig" not in bedrock_mapping.to_converse(call(request, "bedrock", "anthropic.claude-x"))


def test_client_tools_still_need_an_input_schema() -> None:
    with pytest.raises(BadRequest) as info:
        chat({"messages": [{"role": "user", "content": "x"}], "tools": [{"name": "f"}]})
    assert "input_schema" in info.value.message and info.value.param == "tools[0]"


def test_server_tool_blocks_are_kept_whole_from_the_stream() -> None:
    parser = anthropic_response.StreamParser()
    use = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}
    assert parser.parse_event("content_block_start", {"index": 0, "content_block": use}) == []
    for piece in ('{"query": ', '"tollgate"}'):
        delta = {"index": 0, "delta": {"type": "input_json_delta", "partial_json": piece}}
        assert parser.parse_event("content_block_delta", delta) == []
    whole = {**use, "input": {"query": "tollgate"}}
    assert parser.parse_event("content_block_stop", {"index": 0}) == [NativeBlock(whole)]
    result = {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []}
    assert parser.parse_event("content_block_start", {"index": 1, "content_block": result}) == []
    assert parser.parse_event("content_block_stop", {"index": 1}) == [NativeBlock(result)]
    assert anthropic_response.parse_response({"content": [result]})[1] == NativeBlock(result)


def test_native_blocks_keep_their_place_when_rendered_and_streamed() -> None:
    request = ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": "hi"}]})
    use = {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {"query": "q"}}
    chunks = [ThinkingDelta(0, "hm", SIG), NativeBlock(use), TextDelta("ok")]
    builder = ResponseBuilder(call(request))
    for chunk in chunks:
        builder.add(chunk)
    message = render_message(builder, Outcome(status="ok", usage=Usage(1, 1)), {})
    assert [block["type"] for block in message["content"]] == ["thinking", "server_tool_use", "text"]
    encoder = AnthropicEncoder(call(request), anthropic_error)
    frames = b"".join(frame for chunk in chunks for frame in encoder.chunk(chunk)).decode()
    events = [json.loads(line[6:]) for line in frames.splitlines() if line.startswith("data: ")]
    starts = [(e["index"], e["content_block"]["type"]) for e in events if e["type"] == "content_block_start"]
    assert starts == [(0, "thinking"), (1, "server_tool_use"), (2, "text")]
    assert (
        next(e for e in events if e["type"] == "content_block_start" and e["index"] == 1)["content_block"]
        == use
    )


@pytest.mark.parametrize("content", ["disk full", [{"type": "text", "text": "disk full"}]])
def test_tool_result_is_error_reaches_every_upstream(content: str | list[dict[str, Any]]) -> None:
    """Anthropic gets ``is_error`` and the result as sent; Bedrock Claude ``status: error``; every other
    upstream (and Bedrock models without ``status``) the text marked "Error: "."""
    use = {"type": "tool_use", "id": "t1", "name": "f", "input": {}}
    before = [{"role": "user", "content": "write"}, {"role": "assistant", "content": [use]}]
    failed = {"type": "tool_result", "tool_use_id": "t1", "content": content, "is_error": True}
    request = chat({"messages": [*before, {"role": "user", "content": [failed]}]})
    body = anthropic_adapter.to_upstream(call(request))
    sent = content if isinstance(content, list) else [{"type": "text", "text": content}]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": sent, "is_error": True}
    ]
    other = openai_compat.to_upstream(call(request, "openai"))
    assert other["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": "Error: disk full"}
    claude = bedrock_mapping.to_converse(call(request, "bedrock", "us.anthropic.claude-sonnet-4-5-v1:0"))
    result = claude["messages"][2]["content"][0]["toolResult"]
    assert result == {"toolUseId": "t1", "content": [{"text": "Error: disk full"}], "status": "error"}
    nova = bedrock_mapping.to_converse(call(request, "bedrock", "us.amazon.nova-pro-v1:0"))
    assert "status" not in nova["messages"][2]["content"][0]["toolResult"]
    fine = chat({"messages": [*before, {"role": "user", "content": [{**failed, "is_error": False}]}]})
    assert "is_error" not in anthropic_adapter.to_upstream(call(fine))["messages"][2]["content"][0]
