"""The Responses wire format's pure parts: request translation, the event encoder, OpenAI's native events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests import responses_fuzz
from tollgate.api.responses import COMPACTION, RESPONSES
from tollgate.errors import BadRequest, UpstreamError
from tollgate.lifecycle import Outcome
from tollgate.providers import openai_responses
from tollgate.providers.base import ChatCall, Finish, NativeEvent, TextDelta, ToolCallDelta, Usage
from tollgate.schemas.openai import ChatCompletionRequest
from tollgate.schemas.responses import ResponsesChatRequest
from tollgate.streaming import ResponseBuilder
from tollgate.wire.responses import to_chat
from tollgate.wire.responses_request import ResponsesRequest, check_tool_results
from tollgate.wire.responses_stream import ResponsesEncoder


def chat(**body: Any) -> ResponsesChatRequest:
    return to_chat(ResponsesRequest.model_validate(body), body)


def test_items_fold_into_chat_messages() -> None:
    request = chat(
        instructions="sys",
        input=[
            {"role": "user", "content": "q"},
            {"type": "reasoning", "id": "rs", "summary": [], "encrypted_content": "x"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "let me"}]},
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "spawn",
                "namespace": "agents",
                "arguments": "{}",
            },
            {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": "*** Begin"},
            {
                "type": "function_call_output",
                "call_id": "c1",
                "output": [{"type": "input_text", "text": "ok"}],
            },
            {"type": "custom_tool_call_output", "call_id": "c2", "output": "done"},
            {"type": "web_search_call", "id": "ws", "status": "completed"},
        ],
    )
    roles = [m.role for m in request.messages]
    assert roles == ["system", "user", "assistant", "tool", "tool"]
    assistant = request.messages[2]
    assert assistant.content == "let me" and assistant.tool_calls is not None
    assert [c.function.name for c in assistant.tool_calls] == ["agents__spawn", "apply_patch"]
    assert json.loads(assistant.tool_calls[1].function.arguments) == {"input": "*** Begin"}
    assert request.messages[3].content == "ok"
    check_tool_results(request.messages)


def test_tools_choice_and_format() -> None:
    request = chat(
        input="x",
        tools=[
            {"type": "function", "name": "f", "parameters": {"type": "object"}},
            {"type": "namespace", "name": "ns", "tools": [{"type": "custom", "name": "g"}]},
            {"type": "web_search"},
            {"type": "file_search", "vector_store_ids": []},
        ],
        tool_choice={"type": "function", "name": "f"},
        parallel_tool_calls=False,
        text={"format": {"type": "json_object"}},
        reasoning={"effort": "high"},
        max_output_tokens=33,
    )
    assert request.tools is not None and [t.function.name for t in request.tools] == ["f", "ns__g"]
    origin = request.responses.tools["ns__g"]
    assert (origin.kind, origin.name, origin.namespace) == ("custom", "g", "ns")
    assert request.tool_choice == {"type": "function", "function": {"name": "f"}}
    assert request.response_format == {"type": "json_object"} and request.max_tokens == 33
    assert request.passthrough() == {"parallel_tool_calls": False, "reasoning_effort": "high"}


def test_only_hosted_tools_leave_no_tools_and_no_choice() -> None:
    request = chat(
        input="x", tools=[{"type": "web_search"}], tool_choice="required", parallel_tool_calls=True
    )
    assert request.tools is None and request.tool_choice is None and request.passthrough() == {}


def test_native_body_keeps_everything_but_extensions_and_not_with_a_previous_response() -> None:
    body = {"input": "x", "include": ["reasoning.encrypted_content"], "provider": "openai", "pool": "p"}
    assert chat(**body).responses.native == {"input": "x", "include": ["reasoning.encrypted_content"]}
    assert chat(**body, previous_response_id="resp_1").responses.native is None


@pytest.mark.parametrize(
    "body",
    [
        {"input": [{"type": "item_reference", "id": "x"}]},
        {"input": [{"type": "function_call", "name": "f"}]},
        {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]},
        {"input": "x", "background": True},
        {"input": "x", "tool_choice": "sometimes", "tools": [{"type": "function", "name": "f"}]},
        {"input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}},
        {"input": []},
    ],
)
def test_bad_requests(body: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        chat(**body)


@pytest.mark.parametrize("parse", [RESPONSES.parse, COMPACTION.parse], ids=["responses", "compact"])
def test_random_bodies_parse_or_are_a_bad_request(parse: Callable[[bytes], ChatCompletionRequest]) -> None:
    """A property test of the parser (``tests/responses_fuzz.py``): whatever is in the body, the answer is
    a request or a BadRequest (a 400), never another exception (a 500)."""
    for i, body in enumerate(responses_fuzz.bodies(seed=7, n=1000)):
        try:
            parse(json.dumps(body).encode())
        except BadRequest:
            pass
        except Exception as exc:  # the property: nothing but a BadRequest
            pytest.fail(f"body {i} raised {type(exc).__name__}: {exc}\n{json.dumps(body)}")


def test_tool_result_without_its_call_is_refused() -> None:
    with pytest.raises(BadRequest, match="no function call found"):
        check_tool_results(
            chat(input=[{"type": "function_call_output", "call_id": "z", "output": ""}]).messages
        )


def frames(encoded: list[bytes]) -> list[dict[str, Any]]:
    return [json.loads(f.split(b"data: ", 1)[1]) for f in encoded]


def test_encoder_closes_each_item_before_the_next_and_numbers_every_event() -> None:
    request = chat(
        input="x",
        stream=True,
        tools=[{"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "f"}]}],
    )
    call = ChatCall("rid", "llama_cpp", "m", 10, request)
    encoder = ResponsesEncoder(call)
    out = encoder.start()
    for chunk in (
        TextDelta("a"),
        ToolCallDelta(0, "c1", "ns__f", '{"x"'),
        ToolCallDelta(0, arguments=":1}"),
        Finish("tool_calls"),
    ):
        out += encoder.chunk(chunk)
    builder = ResponseBuilder(call)
    out += encoder.end(builder, Outcome("ok", usage=Usage(3, 4)), {})
    events = frames(out)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds.index("response.output_item.done") < kinds.index("response.function_call_arguments.delta")
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["usage"]["total_tokens"] == 7
    call_item = final["output"][1]
    assert (call_item["name"], call_item["namespace"], call_item["arguments"]) == ("f", "ns", '{"x":1}')


def test_native_events_parse_into_typed_chunks_and_failures_raise() -> None:
    created = {"type": "response.created", "response": {"id": "up", "model": "gpt-5"}}
    assert [type(c).__name__ for c in openai_responses.parse_event(created)] == [
        "NativeEvent",
        "ResponseMeta",
    ]
    usage = {"input_tokens": 5, "output_tokens": 2}
    done = {
        "type": "response.incomplete",
        "response": {"output": [], "usage": usage, "incomplete_details": {"reason": "max_output_tokens"}},
    }
    chunks = openai_responses.parse_event(done)
    assert isinstance(chunks[0], NativeEvent) and chunks[1:] == [Finish("length"), Usage(5, 2)]
    with pytest.raises(UpstreamError, match="boom"):
        openai_responses.parse_event({"type": "response.failed", "response": {"error": {"message": "boom"}}})
    with pytest.raises(UpstreamError):
        openai_responses.parse_event({"type": "error", "message": "bad"})


async def streamed(*payloads: dict[str, Any]) -> tuple[list[Any], UpstreamError | None]:
    """The chunks ``parse_stream`` yields for these events, and the error it ends with."""
    from tollgate.providers.sse import SSEvent

    async def events() -> AsyncIterator[SSEvent]:
        for payload in payloads:
            yield SSEvent(payload["type"], json.dumps(payload))

    seen: list[Any] = []
    try:
        async for chunk in openai_responses.parse_stream(events()):
            seen.append(chunk)
    except UpstreamError as exc:
        return seen, exc
    return seen, None


async def test_a_failed_stream_yields_the_usage_it_reports_before_raising() -> None:
    created = {"type": "response.created", "response": {"id": "up"}}
    usage = {"input_tokens": 10, "output_tokens": 45, "input_tokens_details": {"cached_tokens": 4}}
    failed = {"type": "response.failed", "response": {"error": {"message": "boom"}, "usage": usage}}
    seen, error = await streamed(created, failed)
    assert error is not None and "boom" in error.message
    assert seen[-1] == Usage(10, 45, cached_tokens=4)  # charged what OpenAI counted
    seen, error = await streamed(created, {**failed, "response": {"error": {"message": "boom"}}})
    assert error is not None and not any(isinstance(c, Usage) for c in seen)


def test_cached_and_reasoning_tokens_reach_the_responses_usage() -> None:
    from tollgate.providers.openai_compat import parse_response
    from tollgate.wire.responses import render

    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 6,
        "prompt_tokens_details": {"cached_tokens": 8},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    message = {"role": "assistant", "content": "hi"}
    chunks = parse_response({"choices": [{"message": message, "finish_reason": "stop"}], "usage": usage})
    assert Usage(10, 6, cached_tokens=8, reasoning_tokens=2) in chunks
    call = ChatCall("rid", "openrouter", "m", 10, chat(input="x"))
    builder = ResponseBuilder(call)
    for chunk in chunks:
        builder.add(chunk)
    body = render(builder, builder.outcome(), {})
    assert body["usage"]["input_tokens_details"] == {"cached_tokens": 8}
    assert body["usage"]["output_tokens_details"] == {"reasoning_tokens": 2}
    assert body["output"][0]["content"][0]["text"] == "hi" and body["id"] == "resp_rid"


def test_long_namespaced_names_fit_the_upstreams_limit_and_map_back() -> None:
    namespace, name = "n" * 40, "f" * 40
    request = chat(
        input=[
            {"type": "function_call", "call_id": "c", "name": name, "namespace": namespace, "arguments": "{}"}
        ],
        tools=[{"type": "namespace", "name": namespace, "tools": [{"type": "function", "name": name}]}],
    )
    assert request.tools is not None
    flat = request.tools[0].function.name
    assert len(flat) == 64 and request.responses.tools[flat].name == name
    assert (
        request.messages[0].tool_calls is not None and request.messages[0].tool_calls[0].function.name == flat
    )


def test_native_body_gets_tollgates_model_cap_and_stream_and_loses_stripped_tools() -> None:
    body = {
        "model": "gpt-5",
        "input": "x",
        "tools": [{"type": "function", "name": "f"}],
        "tool_choice": "auto",
    }
    request = chat(**body, stream=True, max_output_tokens=5000, provider="openai")
    upstream = openai_responses.to_upstream(ChatCall("rid", "openai", "gpt-5-mini", 256, request))
    assert upstream["model"] == "gpt-5-mini" and upstream["max_output_tokens"] == 256 and upstream["stream"]
    assert upstream["tools"] == body["tools"] and "provider" not in upstream
    stripped = request.model_copy(update={"tools": None, "tool_choice": None})  # TOLLGATE_TOOL_CALLING=0
    upstream = openai_responses.to_upstream(ChatCall("rid", "openai", "gpt-5", 256, stripped))
    assert "tools" not in upstream and "tool_choice" not in upstream


def test_native_body_loses_a_dearer_service_tier() -> None:
    """``service_tier: priority`` would bill more than the reservation's standard price."""
    request = chat(model="gpt-5", input="x", service_tier="priority", provider="openai")
    upstream = openai_responses.to_upstream(ChatCall("rid", "openai", "gpt-5", 256, request))
    assert "service_tier" not in upstream and upstream["input"] == "x"
