"""Pure Bedrock Converse mappings: request building, response and stream parsing, error tables."""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    EventStreamError,
    NoCredentialsError,
    ReadTimeoutError,
)

from tollgate.errors import (
    BadRequest,
    TollgateError,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tollgate.providers.base import ChatCall, Finish, ResponseMeta, TextDelta, ToolCallDelta, Usage
from tollgate.providers.bedrock_errors import error_for_exception
from tollgate.providers.bedrock_mapping import (
    StreamState,
    parse_response,
    parse_stream_event,
    to_converse,
)
from tollgate.schemas.openai import ChatCompletionRequest

FIXTURES = Path(__file__).parents[1] / "fixtures" / "bedrock"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
CITY_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather in a city", "parameters": CITY_SCHEMA},
}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def make_call(model: str = "us.amazon.nova-lite-v1:0", max_tokens: int = 256, **body: Any) -> ChatCall:
    body.setdefault("messages", [{"role": "user", "content": "Hi"}])
    request = ChatCompletionRequest.model_validate(body)
    return ChatCall(
        request_id="req-1", provider="bedrock", model=model, max_tokens=max_tokens, request=request
    )


def replay(events: list[dict[str, Any]]) -> list[Any]:
    state = StreamState()
    return [chunk for event in events for chunk in parse_stream_event(event, state)]


# ---------------------------------------------------------------------------------------------- request


def test_basic_request_with_system_and_inference_config() -> None:
    kwargs = to_converse(
        make_call(
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": "No emoji."},
                {"role": "user", "content": "Hi"},
            ],
            temperature=0.2,
            top_p=0.9,
            stop="END",
        )
    )
    assert kwargs == {
        "modelId": "us.amazon.nova-lite-v1:0",
        "system": [{"text": "Be brief."}, {"text": "No emoji."}],
        "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
        "inferenceConfig": {"maxTokens": 256, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]},
    }


def test_minimal_request_leaves_optional_fields_out() -> None:
    kwargs = to_converse(make_call(max_tokens=10))
    assert kwargs["inferenceConfig"] == {"maxTokens": 10}
    assert "system" not in kwargs
    assert "toolConfig" not in kwargs


@pytest.mark.parametrize(
    "model",
    [
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        "eu.amazon.nova-lite-v1:0",
        "apac.amazon.nova-micro-v1:0",
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0",
    ],
)
def test_model_ids_pass_unchanged(model: str) -> None:
    assert to_converse(make_call(model=model))["modelId"] == model


def test_consecutive_same_role_messages_are_merged() -> None:
    kwargs = to_converse(
        make_call(
            messages=[
                {"role": "user", "content": "one"},
                {"role": "user", "content": [{"type": "text", "text": "two"}]},
                {"role": "assistant", "content": "three"},
                {"role": "assistant", "content": "four"},
                {"role": "user", "content": "five"},
            ]
        )
    )
    assert kwargs["messages"] == [
        {"role": "user", "content": [{"text": "one"}, {"text": "two"}]},
        {"role": "assistant", "content": [{"text": "three"}, {"text": "four"}]},
        {"role": "user", "content": [{"text": "five"}]},
    ]


def test_tool_calls_and_results_round_trip() -> None:
    kwargs = to_converse(
        make_call(
            tools=[WEATHER],
            messages=[
                {"role": "user", "content": "Weather in Paris and Oslo?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "9C"}]},
                {"role": "user", "content": "Thanks"},
            ],
        )
    )
    assert kwargs["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}},
                {"toolUse": {"toolUseId": "call_2", "name": "get_weather", "input": {}}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "call_1", "content": [{"text": "18C"}]}},
                {"toolResult": {"toolUseId": "call_2", "content": [{"text": "9C"}]}},
                {"text": "Thanks"},
            ],
        },
    ]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", '"text"'])
def test_tool_call_arguments_must_be_a_json_object(arguments: str) -> None:
    call = make_call(
        messages=[
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
                ],
            },
        ]
    )
    with pytest.raises(BadRequest) as info:
        to_converse(call)
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"


def test_tool_message_needs_tool_call_id() -> None:
    call = make_call(messages=[{"role": "user", "content": "x"}, {"role": "tool", "content": "r"}])
    with pytest.raises(BadRequest) as info:
        to_converse(call)
    assert info.value.param == "messages[1].tool_call_id"


def test_data_url_image_becomes_bytes() -> None:
    kwargs = to_converse(
        make_call(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    ],
                }
            ]
        )
    )
    image = kwargs["messages"][0]["content"][1]["image"]
    assert image == {"format": "png", "source": {"bytes": base64.b64decode(PNG)}}


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/cat.png",
        "http://example.com/cat.png",
        f"data:image/svg+xml;base64,{PNG}",
        "data:image/png;base64,@@@",
    ],
)
def test_unusable_images_are_bad_requests_naming_the_part(url: str) -> None:
    call = make_call(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ]
    )
    with pytest.raises(BadRequest) as info:
        to_converse(call)
    assert info.value.param == "messages[0].content[1].image_url"


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, {"auto": {}}),
        ("auto", {"auto": {}}),
        ("required", {"any": {}}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"tool": {"name": "get_weather"}}),
    ],
)
def test_tools_and_tool_choice(choice: Any, expected: dict[str, Any]) -> None:
    bare = {"type": "function", "function": {"name": "now"}}
    kwargs = to_converse(make_call(tools=[WEATHER, bare], tool_choice=choice))
    assert kwargs["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Weather in a city",
                    "inputSchema": {"json": CITY_SCHEMA},
                }
            },
            {"toolSpec": {"name": "now", "inputSchema": {"json": {"type": "object", "properties": {}}}}},
        ],
        "toolChoice": expected,
    }


def test_tool_choice_none_leaves_tools_out() -> None:
    assert "toolConfig" not in to_converse(make_call(tools=[WEATHER], tool_choice="none"))


def test_tool_choice_none_with_tool_history_keeps_tools_without_choice() -> None:
    kwargs = to_converse(
        make_call(
            tools=[WEATHER],
            tool_choice="none",
            messages=[
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "function": {"name": "get_weather", "arguments": "{}"}}],
                },
                {"role": "tool", "tool_call_id": "c", "content": "sunny"},
            ],
        )
    )
    assert "toolChoice" not in kwargs["toolConfig"]
    assert kwargs["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"


def test_tool_choice_naming_nothing_is_a_bad_request() -> None:
    with pytest.raises(BadRequest) as info:
        to_converse(make_call(tools=[WEATHER], tool_choice={"type": "function"}))
    assert info.value.param == "tool_choice"


def test_dropped_fields_are_logged_by_name_only(caplog: pytest.LogCaptureFixture) -> None:
    call = make_call(
        messages=[{"role": "user", "content": "SECRET PROMPT"}],
        response_format={"type": "json_object"},
        seed=7,
        logit_bias={"1": 2},
        session_id="s",
    )
    with caplog.at_level(logging.DEBUG, logger="tollgate.providers.bedrock_mapping"):
        kwargs = to_converse(call)
    assert set(kwargs) == {"modelId", "messages", "inferenceConfig"}
    assert "logit_bias, response_format, seed" in caplog.text
    assert "SECRET PROMPT" not in caplog.text
    assert "session_id" not in caplog.text


# --------------------------------------------------------------------------------------------- response


def test_parse_text_response() -> None:
    chunks = parse_response(fixture("converse_text.json"), "us.amazon.nova-lite-v1:0")
    assert chunks == [
        ResponseMeta(model="us.amazon.nova-lite-v1:0", upstream_id="3f1c2a9e-5b7d-4e21-9c0a-1d2e3f4a5b6c"),
        TextDelta("Hello"),
        TextDelta(" there."),
        Finish("stop"),
        Usage(12, 3),
    ]


def test_parse_tool_use_response_counts_cache_tokens_as_prompt() -> None:
    chunks = parse_response(fixture("converse_tool_use.json"), "m")
    assert chunks[1:] == [
        TextDelta("Let me check both cities."),
        ToolCallDelta(0, "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "get_weather", '{"city": "Paris"}'),
        ToolCallDelta(
            1, "tooluse_Xy3pQ9rT2sW8vB1nM4kL0a", "get_weather", '{"city": "Oslo", "unit": "celsius"}'
        ),
        Finish("tool_calls"),
        Usage(prompt_tokens=530, completion_tokens=96, cached_tokens=100, cache_write_tokens=20),
    ]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("model_context_window_exceeded", "length"),
        ("something_new", "stop"),
    ],
)
def test_stop_reasons(reason: str, expected: str) -> None:
    response = {**fixture("converse_text.json"), "stopReason": reason}
    assert Finish(expected) in parse_response(response)  # type: ignore[arg-type]


def test_response_without_message_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        parse_response({"output": {}, "stopReason": "end_turn"})


# ----------------------------------------------------------------------------------------------- stream


def test_stream_text_events() -> None:
    assert replay(fixture("stream_text.json")) == [
        TextDelta("Hel"),
        TextDelta("lo"),
        TextDelta("!"),
        Finish("length"),
        Usage(9, 3),
    ]


def test_stream_tool_use_indexes_count_tool_blocks_only() -> None:
    assert replay(fixture("stream_tool_use.json")) == [
        TextDelta("Checking."),
        ToolCallDelta(0, id="tooluse_A1", name="get_weather"),
        ToolCallDelta(0, arguments='{"city": '),
        ToolCallDelta(0, arguments='"Paris"}'),
        ToolCallDelta(1, id="tooluse_B2", name="get_time"),
        ToolCallDelta(1, arguments='{"tz": "CET"}'),
        Finish("tool_calls"),
        Usage(300, 40),
    ]


def test_unknown_and_empty_events_yield_nothing() -> None:
    state = StreamState()
    assert parse_stream_event({"somethingNew": {"x": 1}}, state) == []
    assert parse_stream_event({"contentBlockDelta": {"contentBlockIndex": 0, "delta": {}}}, state) == []


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ("throttlingException", UpstreamRateLimited),
        ("serviceUnavailableException", UpstreamUnavailable),
        ("modelStreamErrorException", UpstreamError),
        ("internalServerException", UpstreamError),
        ("validationException", UpstreamBadRequest),
    ],
)
def test_stream_exception_events_raise(event: str, error: type[TollgateError]) -> None:
    with pytest.raises(error) as info:
        parse_stream_event({event: {"message": "it broke"}}, StreamState())
    assert "it broke" in info.value.message


# ----------------------------------------------------------------------------------------------- errors


def client_error(code: str, status: int, cls: type[ClientError] = ClientError) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": "details"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return cls(response, "ConverseStream")


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("ThrottlingException", 429, UpstreamRateLimited),
        ("ServiceQuotaExceededException", 400, UpstreamRateLimited),
        ("ValidationException", 400, UpstreamBadRequest),
        ("ResourceNotFoundException", 404, UpstreamNotFound),
        ("AccessDeniedException", 403, UpstreamAuthError),
        ("UnrecognizedClientException", 403, UpstreamAuthError),
        ("ModelNotReadyException", 429, UpstreamUnavailable),
        ("ServiceUnavailableException", 503, UpstreamUnavailable),
        ("ModelTimeoutException", 408, UpstreamTimeout),
        ("InternalServerException", 500, UpstreamError),
        ("ModelErrorException", 424, UpstreamError),
        ("SomethingNew", 503, UpstreamUnavailable),
        ("SomethingNew", 500, UpstreamError),
    ],
)
def test_client_errors_by_code(code: str, status: int, error: type[TollgateError]) -> None:
    mapped = error_for_exception(client_error(code, status))
    assert type(mapped) is error
    assert "details" in mapped.message


def test_auth_errors_say_whose_credentials() -> None:
    mapped = error_for_exception(client_error("AccessDeniedException", 403))
    assert mapped.message.startswith("upstream rejected tollgate's credentials for bedrock")


def test_model_not_found_names_the_model_param() -> None:
    assert error_for_exception(client_error("ResourceNotFoundException", 404)).param == "model"


def test_stream_error_codes_are_lower_camel_case() -> None:
    mapped = error_for_exception(client_error("throttlingException", 400, EventStreamError))
    assert isinstance(mapped, UpstreamRateLimited)


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (EndpointConnectionError(endpoint_url="http://x"), UpstreamUnavailable),
        (ConnectTimeoutError(endpoint_url="http://x"), UpstreamUnavailable),
        (ReadTimeoutError(endpoint_url="http://x"), UpstreamTimeout),
        (NoCredentialsError(), UpstreamUnavailable),  # 503: the operator's to configure
        (RuntimeError("odd"), UpstreamError),
    ],
)
def test_transport_errors(exc: Exception, error: type[TollgateError]) -> None:
    assert type(error_for_exception(exc)) is error


def test_tollgate_errors_pass_through() -> None:
    original = BadRequest("x", param="p")
    assert error_for_exception(original) is original


def test_importing_the_adapter_does_not_import_boto3() -> None:
    code = (
        "import sys, tollgate.providers.bedrock; "
        "sys.exit(1 if {'boto3', 'botocore'} & set(sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=60).returncode == 0
