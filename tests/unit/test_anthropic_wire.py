"""The Anthropic Messages wire format served by tollgate: pure translations and the SSE event sequence."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tollgate.anthropic_tables import STOP_REASONS
from tollgate.api.body import validate
from tollgate.api.messages import anthropic_error
from tollgate.errors import BadRequest, UpstreamRateLimited, UpstreamUnavailable
from tollgate.lifecycle import Outcome
from tollgate.providers.base import ChatCall, Chunk, Finish, TextDelta, ToolCallDelta, Usage
from tollgate.schemas.anthropic import MessagesRequest
from tollgate.schemas.openai import ChatCompletionRequest, ImagePart, TextPart
from tollgate.streaming import ResponseBuilder
from tollgate.wire.anthropic_messages import (
    FINISH_TO_STOP,
    AnthropicEncoder,
    error_body,
    render_message,
    stop_reason,
)
from tollgate.wire.anthropic_messages_request import to_chat

NO_CACHE = {"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def parse(body: dict[str, Any]) -> ChatCompletionRequest:
    return to_chat(validate(MessagesRequest, {"model": "m", "max_tokens": 10, **body}))


def call(stream: bool = True) -> ChatCall:
    request = ChatCompletionRequest.model_validate(
        {"messages": [{"role": "user", "content": "hi"}], "stream": stream}
    )
    return ChatCall("req1", "openai", "gpt-x", 10, request)


# --- request translation ------------------------------------------------------------------------


def test_max_tokens_is_required() -> None:
    with pytest.raises(BadRequest) as info:
        validate(MessagesRequest, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert info.value.param == "max_tokens"


def test_simple_fields() -> None:
    chat = parse(
        {
            "model": "openai/gpt-4o",
            "system": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            "messages": [{"role": "user", "content": "hi"}],
            "stop_sequences": ["END"],
            "temperature": 0.5,
            "top_p": 0.9,
            "top_k": 5,
            "stream": True,
            "metadata": {"user_id": "u1"},
            "provider": "openai",
            "session_id": "s1",
        }
    )
    assert (chat.model, chat.provider, chat.session_id, chat.max_tokens) == (
        "openai/gpt-4o",
        "openai",
        "s1",
        10,
    )
    assert [(m.role, m.content) for m in chat.messages] == [("system", "a\n\nb"), ("user", "hi")]
    assert (chat.stop, chat.temperature, chat.top_p, chat.stream, chat.user) == (
        ["END"],
        0.5,
        0.9,
        True,
        None,  # metadata goes to Anthropic only (Claude Code's user_id is a JSON blob with a device id)
    )
    assert chat.passthrough() == {}  # top_k is not passed through to OpenAI-compatible upstreams
    assert chat.anthropic is not None
    assert (chat.anthropic.metadata, chat.anthropic.extra) == ({"user_id": "u1"}, {"top_k": 5})


def test_images_become_image_url_parts() -> None:
    content = [
        {"type": "text", "text": "what?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.test/cat.png"}},
    ]
    chat = parse({"messages": [{"role": "user", "content": content}]})
    parts = chat.messages[0].content
    assert isinstance(parts, list) and isinstance(parts[0], TextPart)
    assert isinstance(parts[1], ImagePart) and parts[1].image_url.url == f"data:image/png;base64,{PNG}"
    assert isinstance(parts[2], ImagePart) and parts[2].image_url.url == "https://example.test/cat.png"


def test_tool_use_and_tool_result_round_trip() -> None:
    chat = parse(
        {
            "tools": [{"name": "get_weather", "description": "w", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
            "messages": [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Oslo"}},
                        {"type": "tool_use", "id": "t2", "name": "get_weather", "input": {"city": "Rome"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "sunny"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "t2",
                            "content": [{"type": "text", "text": "no data"}],
                            "is_error": True,
                        },
                        {"type": "text", "text": "and tomorrow?"},
                    ],
                },
            ],
        }
    )
    roles = [m.role for m in chat.messages]
    assert roles == ["user", "assistant", "tool", "tool", "user"]
    assistant = chat.messages[1]
    assert assistant.content == "Checking." and assistant.tool_calls is not None
    assert [(c.id, json.loads(c.function.arguments)) for c in assistant.tool_calls] == [
        ("t1", {"city": "Oslo"}),
        ("t2", {"city": "Rome"}),
    ]
    assert [(m.tool_call_id, m.content) for m in chat.messages[2:4]] == [
        ("t1", "sunny"),
        ("t2", "Error: no data"),
    ]
    assert chat.messages[4].content == "and tomorrow?"
    assert chat.tools is not None and chat.tools[0].function.parameters == {"type": "object"}
    assert chat.tool_choice == {"type": "function", "function": {"name": "get_weather"}}
    assert chat.passthrough() == {"parallel_tool_calls": False}


@pytest.mark.parametrize(("kind", "expected"), [("auto", "auto"), ("any", "required"), ("none", "none")])
def test_tool_choice(kind: str, expected: str) -> None:
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    chat = parse(
        {"tools": tools, "tool_choice": {"type": kind}, "messages": [{"role": "user", "content": "x"}]}
    )
    assert chat.tool_choice == expected


@pytest.mark.parametrize(
    ("message", "param"),
    [
        (
            {"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
            "messages[0]",
        ),
        ({"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]}, "messages[0]"),
        ({"role": "user", "content": [{"type": "thinking", "thinking": "hm"}]}, "messages[0].content"),
    ],
)
def test_misplaced_blocks_are_400(message: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse({"messages": [message]})
    assert (info.value.param or "").startswith(param)


# --- response rendering -------------------------------------------------------------------------


def collect(chunks: list[Chunk], stream: bool = False) -> ResponseBuilder:
    builder = ResponseBuilder(call(stream))
    for chunk in chunks:
        builder.add(chunk)
    return builder


def test_finish_reasons_invert_the_upstream_table() -> None:
    for finish, stop in FINISH_TO_STOP.items():
        assert STOP_REASONS[stop] == finish
    assert stop_reason("stop", has_tool_calls=True) == "tool_use"
    assert stop_reason("length", has_tool_calls=False) == "max_tokens"
    assert stop_reason(None, has_tool_calls=False) == "end_turn"


def test_render_text_and_tool_use(caplog: pytest.LogCaptureFixture) -> None:
    builder = collect(
        [
            TextDelta("Hi"),
            ToolCallDelta(0, "call_1", "get_weather", '{"city"'),
            ToolCallDelta(0, arguments=': "Oslo"}'),
            ToolCallDelta(1, None, "broken", "{not json"),
            Finish("tool_calls"),
            Usage(12, 5),
        ]
    )
    with caplog.at_level(logging.WARNING):
        body = render_message(builder, builder.outcome(), {"cost_usd": "0.000001"})
    assert body["id"] == "msg_req1" and body["type"] == "message" and body["role"] == "assistant"
    assert body["content"] == [
        {"type": "text", "text": "Hi"},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}},
        {"type": "tool_use", "id": "toolu_req1_1", "name": "broken", "input": {}},
    ]
    assert body["stop_reason"] == "tool_use" and body["stop_sequence"] is None
    assert body["usage"] == {"input_tokens": 12, "output_tokens": 5, **NO_CACHE}
    assert body["tollgate"] == {"cost_usd": "0.000001"}
    assert "broken" in caplog.text


def test_error_body_by_status() -> None:
    assert anthropic_error(UpstreamRateLimited("slow down")) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }
    assert anthropic_error(BadRequest("bad"))["error"]["type"] == "invalid_request_error"
    assert anthropic_error(UpstreamUnavailable("down"))["error"]["type"] == "overloaded_error"
    assert error_body(502, "x")["error"]["type"] == "api_error"


# --- the event sequence -------------------------------------------------------------------------


def run(chunks: list[Chunk]) -> list[tuple[str, dict[str, Any]]]:
    encoder = AnthropicEncoder(call(), anthropic_error)
    frames = encoder.start()
    builder = ResponseBuilder(encoder.call)
    for chunk in chunks:
        builder.add(chunk)
        frames += encoder.chunk(chunk)
    frames += encoder.end(builder, builder.outcome(), {})
    events = []
    for frame in frames:
        head, data = frame.decode().removesuffix("\n\n").split("\n")
        name, payload = head.removeprefix("event: "), json.loads(data.removeprefix("data: "))
        assert payload["type"] == name
        events.append((name, payload))
    return events


def shape(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [f"{n}:{p['index']}" if "index" in p else n for n, p in events]


def test_text_only() -> None:
    events = run([TextDelta("Hel"), TextDelta("lo"), Finish("stop"), Usage(7, 2)])
    assert shape(events) == [
        "message_start",
        "content_block_start:0",
        "content_block_delta:0",
        "content_block_delta:0",
        "content_block_stop:0",
        "message_delta",
        "message_stop",
    ]
    assert (
        events[0][1]["message"]["id"] == "msg_req1" and events[0][1]["message"]["usage"]["output_tokens"] == 0
    )
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    assert events[3][1]["delta"] == {"type": "text_delta", "text": "lo"}
    assert events[5][1]["delta"]["stop_reason"] == "end_turn"
    assert events[5][1]["usage"] == {"input_tokens": 7, "output_tokens": 2, **NO_CACHE}


def test_tools_only() -> None:
    events = run(
        [
            ToolCallDelta(0, "c1", "f", '{"a"'),
            ToolCallDelta(0, arguments=": 1}"),
            ToolCallDelta(1, "c2", "g", ""),
            ToolCallDelta(1, arguments="{}"),
            Finish("tool_calls"),
        ]
    )
    assert shape(events) == [
        "message_start",
        "content_block_start:0",
        "content_block_delta:0",
        "content_block_delta:0",
        "content_block_stop:0",
        "content_block_start:1",
        "content_block_delta:1",
        "content_block_stop:1",
        "message_delta",
        "message_stop",
    ]
    assert events[1][1]["content_block"] == {"type": "tool_use", "id": "c1", "name": "f", "input": {}}
    assert events[3][1]["delta"] == {"type": "input_json_delta", "partial_json": ": 1}"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_text_then_tool_then_text() -> None:
    events = run(
        [TextDelta("Let me see."), ToolCallDelta(0, "c1", "f", "{}"), TextDelta("more"), Finish("stop")]
    )
    assert shape(events) == [
        "message_start",
        "content_block_start:0",
        "content_block_delta:0",
        "content_block_stop:0",
        "content_block_start:1",
        "content_block_delta:1",
        "content_block_stop:1",
        "content_block_start:2",
        "content_block_delta:2",
        "content_block_stop:2",
        "message_delta",
        "message_stop",
    ]
    assert events[7][1]["content_block"]["type"] == "text"
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"  # an upstream that ended tool calls with stop


def test_empty_answer_has_no_blocks() -> None:
    assert shape(run([Finish("length")])) == ["message_start", "message_delta", "message_stop"]


def test_error_event() -> None:
    encoder = AnthropicEncoder(call(), anthropic_error)
    encoder.chunk(TextDelta("a"))
    (frame,) = encoder.error(UpstreamUnavailable("overloaded"))
    head, data = frame.decode().removesuffix("\n\n").split("\n")
    assert head == "event: error"
    assert json.loads(data.removeprefix("data: ")) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "overloaded"},
    }


def test_outcome_usage_wins_over_builder() -> None:
    builder = collect([TextDelta("x")])
    body = render_message(builder, Outcome(status="ok", usage=Usage(1, 2)), {})
    assert body["usage"] == {"input_tokens": 1, "output_tokens": 2, **NO_CACHE}
    assert "tollgate" not in body
