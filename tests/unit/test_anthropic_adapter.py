"""Anthropic Messages adapter: pure mappings against canned bodies, then I/O against MockTransport."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tollgate import errors
from tollgate.anthropic_tables import STOP_REASONS
from tollgate.config import ProviderConfig, Settings
from tollgate.providers.anthropic import AnthropicProvider, endpoint, headers, to_upstream
from tollgate.providers.anthropic_response import ERROR_TYPES, StreamParser, error_for_event, parse_response
from tollgate.providers.base import (
    ChatCall,
    Chunk,
    Finish,
    FinishReason,
    ResponseMeta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from tollgate.providers.sse import parse_sse_lines
from tollgate.schemas.openai import ChatCompletionRequest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "anthropic"
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}


def fixture_json(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return payload


def fixture_events(name: str) -> list[tuple[str | None, dict[str, Any]]]:
    events = []
    for block in (FIXTURES / name).read_text().split("\n\n"):
        event = parse_sse_lines(block.splitlines())
        if event is not None:
            events.append((event.event, json.loads(event.data)))
    return events


def parse_stream(name: str) -> list[Chunk]:
    parser = StreamParser()
    return [chunk for event, payload in fixture_events(name) for chunk in parser.parse_event(event, payload)]


def make_call(body: dict[str, Any]) -> ChatCall:
    return ChatCall(
        request_id="r1",
        provider="claude",
        model="claude-3-5-haiku-latest",
        max_tokens=100,
        request=ChatCompletionRequest.model_validate(body),
    )


def user(text: str = "Hi") -> dict[str, Any]:
    return {"role": "user", "content": text}


def upstream(messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return to_upstream(make_call({"messages": messages, **extra}))


@pytest.fixture
def config() -> ProviderConfig:
    return Settings(claude_api_key="sk-test", claude_base_url="http://upstream.test/v1/").provider("claude")


# --- request mapping --------------------------------------------------------------------------


def test_endpoint_and_headers(config: ProviderConfig) -> None:
    assert endpoint(config) == "http://upstream.test/v1/messages"
    sent = headers(config)
    assert sent["x-api-key"] == "sk-test"
    assert sent["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in sent


def test_minimal_body() -> None:
    body = upstream([user("Hello")])
    assert body == {
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        "stream": False,
    }


def test_system_and_developer_messages_become_top_level_system() -> None:
    body = upstream(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            user(),
        ]
    )
    assert body["system"] == "Be brief.\n\nAnswer in French."
    assert [m["role"] for m in body["messages"]] == ["user"]


def test_image_parts() -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
    ]
    (message,) = upstream([{"role": "user", "content": content}])["messages"]
    assert message["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_bad_image_url_names_the_param() -> None:
    content = [
        {"type": "text", "text": "x"},
        {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}},
    ]
    with pytest.raises(errors.BadRequest) as info:
        upstream([{"role": "user", "content": content}])
    assert info.value.param == "messages[0].content[1].image_url.url"


def tool_call(call_id: str, arguments: str, name: str = "get_weather") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_tool_round_trip_merges_results_into_one_user_turn() -> None:
    messages = [
        user("Weather in Paris and Rome?"),
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                tool_call("toolu_1", '{"location": "Paris"}'),
                tool_call("toolu_2", '{"location": "Rome"}'),
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "21C"}]},
        user("Thanks, and tomorrow?"),
    ]
    body = upstream(messages, tools=[WEATHER_TOOL])
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"location": "Rome"}},
    ]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18C"}]},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "21C"}]},
        {"type": "text", "text": "Thanks, and tomorrow?"},
    ]


def test_assistant_with_only_tool_calls_and_empty_arguments() -> None:
    messages = [user(), {"role": "assistant", "content": None, "tool_calls": [tool_call("t1", "", "now")]}]
    assert upstream(messages)["messages"][1]["content"] == [
        {"type": "tool_use", "id": "t1", "name": "now", "input": {}}
    ]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", '"text"'])
def test_bad_tool_arguments_name_the_param(arguments: str) -> None:
    calls = [tool_call("t0", "{}"), tool_call("t1", arguments)]
    messages = [user(), {"role": "assistant", "tool_calls": calls}]
    with pytest.raises(errors.BadRequest) as info:
        upstream(messages)
    assert info.value.param == "messages[1].tool_calls[1].function.arguments"


def test_tool_message_needs_tool_call_id() -> None:
    with pytest.raises(errors.BadRequest) as info:
        upstream([user(), {"role": "tool", "content": "42"}])
    assert info.value.param == "messages[1].tool_call_id"


def test_consecutive_messages_merge_and_empty_text_is_left_out() -> None:
    messages = [user("one"), user("two"), {"role": "assistant", "content": ""}, user("   "), user("three")]
    assert upstream(messages)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "one"},
                {"type": "text", "text": "two"},
                {"type": "text", "text": "three"},
            ],
        }
    ]


def test_only_system_messages_is_a_bad_request() -> None:
    with pytest.raises(errors.BadRequest) as info:
        upstream([{"role": "system", "content": "You are helpful."}])
    assert info.value.param == "messages"


def test_sampling_stop_user_and_stream() -> None:
    body = upstream([user()], temperature=0, top_p=0.9, stop="END", user="u-42", stream=True)
    assert body["temperature"] == 0
    assert body["top_p"] == 0.9
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "u-42"}
    assert body["stream"] is True
    assert "stream_options" not in body
    assert upstream([user()], stop=["a", "b"])["stop_sequences"] == ["a", "b"]


def test_tools_mapping() -> None:
    bare = {"type": "function", "function": {"name": "now"}}
    body = upstream([user()], tools=[WEATHER_TOOL, bare])
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in body


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
    ],
)
def test_tool_choice(choice: Any, expected: dict[str, Any]) -> None:
    assert upstream([user()], tools=[WEATHER_TOOL], tool_choice=choice)["tool_choice"] == expected


def test_unknown_tool_choice_is_a_bad_request() -> None:
    with pytest.raises(errors.BadRequest) as info:
        upstream([user()], tools=[WEATHER_TOOL], tool_choice={"type": "allowed_tools"})
    assert info.value.param == "tool_choice"


def test_dropped_fields_are_logged_by_name_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="tollgate.providers.anthropic")
    body = upstream(
        [user("secret prompt")],
        response_format={"type": "json_object"},
        seed=1234,
        logit_bias={"50256": -100},
        tool_choice="auto",
        provider="claude",
        session_id="s1",
    )
    for field in ("response_format", "seed", "logit_bias", "tool_choice", "provider", "session_id"):
        assert field not in body
    (record,) = [r for r in caplog.records if r.name == "tollgate.providers.anthropic"]
    text = record.getMessage()
    assert "logit_bias" in text
    assert "response_format" in text
    assert "seed" in text
    assert "tool_choice" in text
    assert "session_id" not in text  # extensions are tollgate's, not dropped upstream fields
    assert "1234" not in text
    assert "json_object" not in text
    assert "secret prompt" not in text


# --- response mapping -------------------------------------------------------------------------


def test_parse_text_response() -> None:
    assert parse_response(fixture_json("message_text.json")) == [
        ResponseMeta(model="claude-3-5-haiku-20241022", upstream_id="msg_01XFDUDYJgAACzvnptvVoYEL"),
        TextDelta("Hello! How can I help you today?"),
        Finish("stop"),
        Usage(12, 10),
    ]


def test_parse_tool_use_response() -> None:
    chunks = parse_response(fixture_json("message_tool_use.json"))
    assert chunks[1] == TextDelta("I'll look up the weather in both cities.")
    calls = [c for c in chunks if isinstance(c, ToolCallDelta)]
    assert [(c.index, c.id, c.name) for c in calls] == [
        (0, "toolu_01A09q90qw90lq917835lq9", "get_weather"),
        (1, "toolu_01B7z2m4k8x6c5v3b1n9m0qa", "get_weather"),
    ]
    assert json.loads(calls[0].arguments) == {"location": "Paris, France", "unit": "celsius"}
    assert json.loads(calls[1].arguments) == {"location": "Zürich", "unit": "celsius"}
    usage = Usage(420 + 100 + 50, 88, cached_tokens=50, cache_write_tokens=100)
    assert chunks[-2:] == [Finish("tool_calls"), usage]


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("pause_turn", "stop"),
        ("refusal", "content_filter"),
        ("something_new", "stop"),
        (None, "stop"),
    ],
)
def test_stop_reasons(stop_reason: str | None, finish: FinishReason) -> None:
    payload: dict[str, Any] = {"id": "m", "model": "x", "content": [], "stop_reason": stop_reason}
    assert Finish(finish) in parse_response(payload)


def test_stop_reason_table_only_gives_openai_reasons() -> None:
    assert set(STOP_REASONS.values()) <= {"stop", "length", "tool_calls", "content_filter"}


def test_error_body_with_success_status_raises() -> None:
    with pytest.raises(errors.UpstreamUnavailable, match="Overloaded"):
        parse_response(fixture_json("error_overloaded.json"))


# --- stream mapping ---------------------------------------------------------------------------


def test_stream_text() -> None:
    assert parse_stream("stream_text.sse") == [
        ResponseMeta(model="claude-3-5-haiku-20241022", upstream_id="msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"),
        Usage(25, 1, partial=True),  # message_start: the input known at once, superseded later
        TextDelta("Hello"),
        TextDelta(", world!"),
        Usage(25, 15),  # message_delta: the last usage, should message_stop not come
        Finish("stop"),
        Usage(25, 15),
    ]


def test_stream_tool_use_counts_tool_blocks_only() -> None:
    chunks = parse_stream("stream_tool_use.sse")
    assert "".join(c.text for c in chunks if isinstance(c, TextDelta)) == "Let me check the weather."
    calls = [c for c in chunks if isinstance(c, ToolCallDelta)]
    assert calls[0] == ToolCallDelta(index=0, id="toolu_01T1x1fJ34qAmk2tNTrN7Up6", name="get_weather")
    assert calls[-2] == ToolCallDelta(index=1, id="toolu_01CkcGJr5cw7ZbwSXoX7RZXV", name="get_time")
    assert calls[-1] == ToolCallDelta(index=1, arguments="{}")  # no arguments streamed: "{}" like OpenAI
    first = "".join(c.arguments for c in calls if c.index == 0)
    assert json.loads(first) == {"location": "San Francisco, CA"}
    usage = Usage(472 + 20 + 8, 89, cached_tokens=8, cache_write_tokens=20)
    assert chunks[-2:] == [Finish("tool_calls"), usage]


def test_stream_error_event_raises_after_partial_text() -> None:
    parser = StreamParser()
    seen: list[Chunk] = []

    def feed_all() -> None:
        for event, payload in fixture_events("stream_error.sse"):
            seen.extend(parser.parse_event(event, payload))

    with pytest.raises(errors.UpstreamUnavailable, match="Overloaded"):
        feed_all()
    assert TextDelta("Partial") in seen
    assert not parser.finished
    assert [c for c in seen if isinstance(c, Usage)] == [Usage(25, 1, partial=True)]  # message_start's input


@pytest.mark.parametrize(
    ("kind", "error_type"),
    [
        ("overloaded_error", errors.UpstreamUnavailable),
        ("rate_limit_error", errors.UpstreamRateLimited),
        ("api_error", errors.UpstreamError),
        ("authentication_error", errors.UpstreamAuthError),
        ("brand_new_error", errors.UpstreamError),
    ],
)
def test_error_event_mapping(kind: str, error_type: type[errors.TollgateError]) -> None:
    error = error_for_event({"type": "error", "error": {"type": kind, "message": "upstream says no"}})
    assert type(error) is error_type
    assert "upstream says no" in error.message
    assert ERROR_TYPES.get(kind, errors.UpstreamError) is error_type


def test_stream_event_name_falls_back_to_payload_type_and_unknown_events_are_ignored() -> None:
    parser = StreamParser()
    assert parser.parse_event(None, {"type": "message_start", "message": {"id": "m1"}}) == [
        ResponseMeta(upstream_id="m1"),
        Usage(0, 0, partial=True),
    ]
    assert parser.parse_event("ping", {"type": "ping"}) == []
    assert parser.parse_event("brand_new_event", {"type": "brand_new_event"}) == []
    server_tool = {"index": 0, "content_block": {"type": "server_tool_use", "id": "s1", "name": "web_search"}}
    assert parser.parse_event("content_block_start", server_tool) == []


def test_message_delta_input_tokens_update_the_prompt_count() -> None:
    parser = StreamParser()
    parser.parse_event("message_start", {"message": {"usage": {"input_tokens": 10, "output_tokens": 1}}})
    parser.parse_event("message_delta", {"delta": {}, "usage": {"input_tokens": 30, "output_tokens": 5}})
    assert parser.parse_event("message_stop", {}) == [Usage(30, 5)]


def test_message_start_reports_the_input_usage_at_once_with_the_cache_parts() -> None:
    parser = StreamParser()
    usage = {
        "input_tokens": 9000,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 20,
        "cache_creation": {"ephemeral_1h_input_tokens": 5},
        "output_tokens": 1,
    }
    chunks = parser.parse_event("message_start", {"message": {"id": "m1", "usage": usage}})
    assert chunks[1:] == [
        Usage(9120, 1, cached_tokens=100, cache_write_tokens=20, cache_write_1h_tokens=5, partial=True)
    ]


# --- I/O against MockTransport ----------------------------------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


def provider_with(config: ProviderConfig, handler: Handler) -> AnthropicProvider:
    return AnthropicProvider(config, httpx.AsyncClient(transport=httpx.MockTransport(handler)))


async def collect(provider: AnthropicProvider, call: ChatCall) -> list[Chunk]:
    return [chunk async for chunk in provider.chat(call)]


def sse_response(name: str) -> httpx.Response:
    return httpx.Response(
        200, content=(FIXTURES / name).read_bytes(), headers={"content-type": "text/event-stream"}
    )


def json_response(status: int, name: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, content=(FIXTURES / name).read_bytes(), headers=headers)


async def test_non_streaming_call_sends_headers_and_body(config: ProviderConfig) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return json_response(200, "message_text.json")

    call = make_call({"messages": [user("Hello")]})
    chunks = await collect(provider_with(config, handler), call)
    assert TextDelta("Hello! How can I help you today?") in chunks
    (request,) = seen
    assert str(request.url) == "http://upstream.test/v1/messages"
    assert request.headers["x-api-key"] == "sk-test"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == to_upstream(call)


async def test_streaming_call(config: ProviderConfig) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return sse_response("stream_tool_use.sse")

    call = make_call({"messages": [user()], "stream": True, "tools": [WEATHER_TOOL]})
    chunks = await collect(provider_with(config, handler), call)
    assert chunks == parse_stream("stream_tool_use.sse")
    assert json.loads(seen[0].content)["stream"] is True
    assert seen[0].headers["x-api-key"] == "sk-test"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("status", "name", "retry_after", "error_type"),
    [
        (401, "error_auth.json", None, errors.UpstreamAuthError),
        (429, "error_rate_limit.json", "7", errors.UpstreamRateLimited),
        (529, "error_overloaded.json", None, errors.UpstreamUnavailable),
        (503, "error_overloaded.json", "3", errors.UpstreamUnavailable),
        (500, "error_auth.json", None, errors.UpstreamError),
    ],
)
async def test_upstream_http_errors(
    config: ProviderConfig,
    stream: bool,
    status: int,
    name: str,
    retry_after: str | None,
    error_type: type[errors.TollgateError],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return json_response(status, name, **({"retry-after": retry_after} if retry_after else {}))

    call = make_call({"messages": [user()], "stream": stream})
    with pytest.raises(errors.TollgateError) as info:
        await collect(provider_with(config, handler), call)
    assert type(info.value) is error_type
    assert info.value.retry_after == (float(retry_after) if retry_after else None)
    assert "sk-test" not in info.value.message


async def test_rate_limit_message_is_passed_on(config: ProviderConfig) -> None:
    provider = provider_with(config, lambda request: json_response(429, "error_rate_limit.json"))
    with pytest.raises(errors.UpstreamRateLimited, match="per-minute rate limit"):
        await collect(provider, make_call({"messages": [user()]}))


@pytest.mark.parametrize("stream", [False, True])
async def test_connection_error_is_unavailable(config: ProviderConfig, stream: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(errors.UpstreamUnavailable):
        await collect(provider_with(config, handler), make_call({"messages": [user()], "stream": stream}))


async def test_error_event_mid_stream_raises(config: ProviderConfig) -> None:
    provider = provider_with(config, lambda request: sse_response("stream_error.sse"))
    seen: list[Chunk] = []

    async def consume() -> None:
        async for chunk in provider.chat(make_call({"messages": [user()], "stream": True})):
            seen.append(chunk)

    with pytest.raises(errors.UpstreamUnavailable, match="Overloaded"):
        await consume()
    assert TextDelta("Partial") in seen


async def test_stream_cut_before_message_stop_is_an_error(config: ProviderConfig) -> None:
    transcript = (FIXTURES / "stream_text.sse").read_text().split("event: message_delta")[0]
    provider = provider_with(config, lambda request: httpx.Response(200, content=transcript.encode()))
    with pytest.raises(errors.UpstreamError, match="message_stop"):
        await collect(provider, make_call({"messages": [user()], "stream": True}))


async def test_bad_request_is_raised_before_any_upstream_call(config: ProviderConfig) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no upstream call expected")

    messages = [user(), {"role": "assistant", "tool_calls": [tool_call("t1", "{oops")]}]
    with pytest.raises(errors.BadRequest):
        await collect(provider_with(config, handler), make_call({"messages": messages}))


async def test_aclose_leaves_the_shared_client_open(config: ProviderConfig) -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    provider = AnthropicProvider(config, client)
    await provider.aclose()
    assert not client.is_closed
    assert provider.name == "claude"
    await client.aclose()
