"""Chunk collection, chunk formatting, token estimates and the Prometheus rendering."""

from __future__ import annotations

from typing import Any

from tollgate.observability.metrics import Metrics
from tollgate.prompt_bound import image_token_bound
from tollgate.providers.base import ChatCall, Finish, ResponseMeta, TextDelta, ToolCallDelta, Usage
from tollgate.schemas.openai import ChatCompletionRequest
from tollgate.streaming import ResponseBuilder
from tollgate.tokens import estimate_prompt_tokens, estimate_tokens
from tollgate.wire.openai_chat import ChunkFormatter, completion


def make_call() -> ChatCall:
    request = ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": "Say hi"}]})
    return ChatCall(request_id="abc", provider="openai", model="m", max_tokens=10, request=request)


def test_builder_assembles_text_tool_calls_and_usage() -> None:
    builder = ResponseBuilder(make_call())
    for chunk in (
        ResponseMeta(model="m-2024"),
        TextDelta("Hi "),
        TextDelta("there"),
        ToolCallDelta(0, "c1", "f", '{"a"'),
        ToolCallDelta(0, None, None, ": 1}"),
        Finish("tool_calls"),
        Usage(5, 7),
    ):
        builder.add(chunk)
    usage = builder.final_usage()
    body = completion(builder, usage, {})
    assert body["model"] == "m-2024" and body["id"] == "chatcmpl-abc"
    message = body["choices"][0]["message"]
    assert message["content"] == "Hi there"
    assert message["tool_calls"] == [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    ]
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 7,
        "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert "tollgate" not in body


def test_builder_estimates_missing_usage() -> None:
    builder = ResponseBuilder(make_call())
    builder.add(TextDelta("Hello world, how are you?"))
    usage = builder.final_usage()
    assert usage.estimated and usage.completion_tokens == 7 and usage.prompt_tokens > 2
    body = completion(builder, usage, {"usage_estimated": True})
    assert body["tollgate"] == {"usage_estimated": True}
    assert body["choices"][0]["finish_reason"] == "stop"


def test_a_partial_usage_is_superseded_by_the_final_one() -> None:
    builder = ResponseBuilder(make_call())
    for chunk in (Usage(9000, 1, cached_tokens=50, partial=True), TextDelta("Hello world"), Usage(9000, 2)):
        builder.add(chunk)
    assert builder.final_usage() == Usage(9000, 2)


def test_a_stream_cut_after_a_partial_usage_is_charged_its_input_and_the_output_seen() -> None:
    builder = ResponseBuilder(make_call())
    builder.add(Usage(9000, 1, cached_tokens=50, cache_write_tokens=20, partial=True))
    nothing_seen = builder.final_usage()
    assert nothing_seen == Usage(9000, 1, cached_tokens=50, cache_write_tokens=20)  # as reported
    for chunk in (
        TextDelta("The quick brown fox jumps over the lazy dog."),
        ToolCallDelta(0, "c", "f", "{}"),
    ):
        builder.add(chunk)
    usage = builder.final_usage()
    assert usage == Usage(9000, 10 + 3, True, cached_tokens=50, cache_write_tokens=20)  # the output estimated


def test_the_estimate_counts_the_tools_schema_and_images_sent() -> None:
    def estimated(**body: Any) -> int:
        content: list[dict[str, Any]] = [{"type": "text", "text": "Say hi"}, *body.pop("parts", [])]
        request = ChatCompletionRequest.model_validate(
            {"messages": [{"role": "user", "content": content}], **body}
        )
        usage = ResponseBuilder(ChatCall("abc", "openai", "gpt-4o", 10, request)).final_usage()
        assert usage.estimated
        return usage.prompt_tokens

    tools = [
        {"type": "function", "function": {"name": f"tool_{n}", "description": "word " * 200}}
        for n in range(5)
    ]
    schema = {"type": "json_schema", "json_schema": {"name": "s", "schema": {"description": "word " * 100}}}
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    bare = estimated()
    assert estimated(tools=tools) >= bare + 5 * 200
    assert estimated(response_format=schema) >= bare + 100
    assert estimated(parts=[image]) == bare + image_token_bound("openai", "gpt-4o")


def test_formatter_chunks() -> None:
    formatter = ChunkFormatter(make_call())
    assert formatter.role()["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert formatter.format(TextDelta("x"))["choices"][0]["delta"] == {"content": "x"}  # type: ignore[index]
    first = formatter.format(ToolCallDelta(1, "c", "f", ""))
    assert first is not None
    assert first["choices"][0]["delta"]["tool_calls"] == [
        {"index": 1, "id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}
    ]
    assert formatter.format(ResponseMeta(model="m-new")) is None
    assert formatter.format(Finish("length"))["model"] == "m-new"  # type: ignore[index]
    usage = formatter.usage(Usage(1, 2), {"usage_estimated": True})
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 3
    assert usage["tollgate"] == {"usage_estimated": True}


def test_token_estimates_are_plausible() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("The quick brown fox jumps over the lazy dog.") == 10
    assert estimate_tokens("internationalization") == 5
    assert estimate_prompt_tokens(["hi", "there"]) == 3 + 1 + 3 + 1 + 3


def test_metrics_render_prometheus_text() -> None:
    metrics = Metrics()
    metrics.observe("openai", 'we"ird', "ok", 0.03, 10, 20, known=True)
    metrics.observe("openai", 'we"ird', "upstream_error", 0.2, 0, 0, known=True)
    text = metrics.render(in_flight=2)
    assert 'tollgate_requests_total{provider="openai",model="we\\"ird",status="ok"} 1' in text
    assert 'tollgate_request_duration_seconds_bucket{provider="openai",le="0.05"} 1' in text
    assert 'tollgate_request_duration_seconds_bucket{provider="openai",le="+Inf"} 2' in text
    assert 'tollgate_tokens_out_total{provider="openai",model="we\\"ird"} 20' in text
    assert "tollgate_requests_in_flight 2" in text


def test_metrics_label_only_known_models_and_cap_the_series() -> None:
    """A model nobody configured and no upstream answered is ``other``; past the cap of distinct models
    every new one is ``overflow``: /metrics stays bounded whatever names clients send."""
    metrics = Metrics(max_models=3)
    for i in range(50):
        metrics.observe("ollama", f"made-up-{i}", "provider_unavailable", 0.01, 0, 0, known=False)
        metrics.attempt_failed("ollama", f"made-up-{i}", retried=False, cooled=False, known=False)
    for i in range(50):
        metrics.observe("llama_cpp", f"served-{i}", "ok", 0.01, 1, 1, known=True)  # an upstream answered it
        metrics.attempt_served("llama_cpp", f"served-{i}", fallback=False)
    text = metrics.render(in_flight=0)
    assert "made-up-" not in text
    assert 'tollgate_requests_total{provider="ollama",model="other",status="provider_unavailable"} 50' in text
    assert 'tollgate_attempts_total{provider="ollama",model="other",result="failed"} 50' in text
    served = {m for m in ("served-0", "served-1", "served-2", "served-3") if f'model="{m}"' in text}
    assert served == {"served-0", "served-1"}  # the cap counts ollama's "other" too
    assert 'tollgate_requests_total{provider="llama_cpp",model="overflow",status="ok"} 48' in text
    assert metrics.model_label("ollama", "made-up-1", known=False) == "other"
    assert metrics.model_label("llama_cpp", "served-1", known=True) == "served-1"
    assert metrics.model_label("llama_cpp", "served-9", known=True) == "overflow"
