"""Pure mappings of the OpenAI-compatible adapter, on canned upstream bodies."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from tollgate.config import Settings
from tollgate.errors import UpstreamError
from tollgate.providers.base import ChatCall, Finish, ResponseMeta, TextDelta, ToolCallDelta, Usage
from tollgate.providers.openai_compat import (
    OpenAICompatProvider,
    endpoint,
    headers,
    parse_chunk,
    parse_response,
    to_upstream,
)
from tollgate.providers.sse import iter_sse_bytes
from tollgate.schemas.openai import ChatCompletionRequest

FIXTURES = Path(__file__).parent.parent / "fixtures" / "openai"


def make_call(provider: str = "openai", **body: Any) -> ChatCall:
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    request = ChatCompletionRequest.model_validate(body)
    return ChatCall(request_id="r1", provider=provider, model="m-1", max_tokens=77, request=request)


async def _reads(text: str) -> Any:
    for line in text.split("\n"):
        yield (line + "\n").encode()


async def parse_fixture(name: str) -> list[Any]:
    chunks: list[Any] = []
    async for event in iter_sse_bytes(_reads((FIXTURES / name).read_text())):
        if event.data != "[DONE]":
            chunks += parse_chunk(json.loads(event.data))
    return chunks


def test_endpoints_and_headers() -> None:
    settings = Settings(
        openrouter_api_key="sk-or",
        openrouter_http_referer="https://example.test",
        openrouter_app_name="my app",
    )
    assert endpoint(settings.provider("openai")) == "https://api.openai.com/v1/chat/completions"
    assert endpoint(settings.provider("ollama")) == "http://127.0.0.1:11434/v1/chat/completions"
    assert endpoint(settings.provider("llama_cpp")) == "http://127.0.0.1:8080/v1/chat/completions"
    assert headers(settings.provider("openrouter")) == {
        "HTTP-Referer": "https://example.test",
        "X-Title": "my app",
        "Authorization": "Bearer sk-or",
    }
    assert "Authorization" not in headers(settings.provider("ollama"))


def test_to_upstream_maps_known_fields_and_keeps_unknown_ones() -> None:
    body = to_upstream(
        make_call(
            temperature=0.2,
            top_p=0.9,
            stop="END",
            user="u1",
            response_format={"type": "json_object"},
            stream=True,
            think=False,
            provider="openai",
            session_id="s",
            pool="p",
            loop_mode="basic",
            tools=[{"type": "function", "function": {"name": "f"}}],
            tool_choice="required",
        )
    )
    assert body["model"] == "m-1" and body["max_completion_tokens"] == 77 and "max_tokens" not in body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["think"] is False
    assert body["tools"] == [{"type": "function", "function": {"name": "f"}}]
    for extension in ("provider", "session_id", "pool", "loop_mode"):
        assert extension not in body
    assert (body["temperature"], body["top_p"], body["stop"], body["user"]) == (0.2, 0.9, "END", "u1")


# pass-through fields that raise the output cap, multiply the outputs, pick a dearer tier or another model
RISKY_PASSTHROUGH: dict[str, Any] = {
    "n_predict": 600,  # llama.cpp: wins over max_tokens (-1: unlimited)
    "num_predict": 600,
    "num_ctx": 131072,
    "options": {"num_predict": 600, "num_ctx": 131072},  # Ollama
    "max_new_tokens": 600,
    "best_of": 20,
    "service_tier": "priority",
    "models": ["anthropic/claude-opus-4.1"],  # OpenRouter: another model than the allow-listed one
    "route": "fallback",
    "preset": "expensive",
    "plugins": [{"id": "web"}],
    "web_search_options": {},
    "prediction": {"type": "content", "content": "x"},
}


@pytest.mark.parametrize("provider", ["openai", "openrouter", "ollama", "llama_cpp"])
def test_pass_through_fields_that_change_the_cap_the_price_or_the_model_are_dropped(
    provider: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tollgate.providers.passthrough")
    body = to_upstream(make_call(provider, ignore_eos=True, repeat_penalty=1.1, **RISKY_PASSTHROUGH))
    assert not set(RISKY_PASSTHROUGH) & set(body), sorted(set(RISKY_PASSTHROUGH) & set(body))
    assert body["ignore_eos"] is True and body["repeat_penalty"] == 1.1  # harmless ones still pass
    assert body["max_completion_tokens" if provider == "openai" else "max_tokens"] == 77
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "n_predict" in logged and "best_of" in logged
    assert "anthropic/claude-opus" not in logged  # names only, never values


def test_local_providers_get_max_tokens_and_system_for_developer() -> None:
    body = to_upstream(
        make_call(
            "ollama", messages=[{"role": "developer", "content": "rules"}, {"role": "user", "content": "hi"}]
        )
    )
    assert body["max_tokens"] == 77 and body["stream"] is False and "stream_options" not in body
    assert body["messages"][0] == {"role": "system", "content": "rules"}


def test_image_parts_are_forwarded_untouched() -> None:
    parts = [
        {"type": "text", "text": "what is it?"},
        {"type": "image_url", "image_url": {"url": "https://example.test/cat.png"}},
    ]
    body = to_upstream(make_call(messages=[{"role": "user", "content": parts}]))
    assert body["messages"][0]["content"] == parts


def test_parse_response_with_tool_calls() -> None:
    chunks = parse_response(json.loads((FIXTURES / "completion_tool_calls.json").read_text()))
    assert chunks == [
        ResponseMeta(model="gpt-4o-mini-2024-07-18", upstream_id="chatcmpl-abc"),
        ToolCallDelta(0, "call_a", "get_weather", '{"city":"Paris"}'),
        ToolCallDelta(1, "call_b", "get_time", "{}"),
        Finish("tool_calls"),
        Usage(82, 41),
    ]


async def test_parse_stream_text() -> None:
    chunks = [c for c in await parse_fixture("stream_text.sse") if not isinstance(c, ResponseMeta)]
    assert chunks == [TextDelta("Hel"), TextDelta("lo"), Finish("length"), Usage(9, 2)]


async def test_parse_llama_cpp_tool_stream() -> None:
    chunks = [c for c in await parse_fixture("stream_llama_cpp_tool.sse") if not isinstance(c, ResponseMeta)]
    assert chunks == [
        ToolCallDelta(0, "call_x", "echo", ""),
        ToolCallDelta(0, None, None, '{"text":'),
        ToolCallDelta(0, None, None, ' "hi"}'),
        Finish("tool_calls"),
        Usage(30, 12),
    ]


def test_error_and_empty_payloads() -> None:
    with pytest.raises(UpstreamError, match="boom"):
        parse_chunk({"error": {"message": "boom"}})
    with pytest.raises(UpstreamError, match="without choices"):
        parse_response({"choices": []})
    assert parse_chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "function_call"}]}) == [
        Finish("tool_calls")
    ]


async def test_io_against_mock_transport() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=(FIXTURES / "completion_tool_calls.json").read_bytes())

    config = Settings(openai_api_key="sk-test", openai_base_url="http://upstream.test/v1").provider("openai")
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        provider = OpenAICompatProvider(config, client)
        chunks = [c async for c in provider.chat(make_call())]
    assert isinstance(chunks[-1], Usage)
    assert seen[0].url == "http://upstream.test/v1/chat/completions"
    assert seen[0].headers["authorization"] == "Bearer sk-test"


async def test_non_json_upstream_body_is_an_upstream_error() -> None:
    config = Settings(openai_api_key="sk", openai_base_url="http://upstream.test/v1").provider("openai")
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=b"<html>"))
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(UpstreamError, match="not JSON"):
            [c async for c in OpenAICompatProvider(config, client).chat(make_call())]


def test_upstream_json_nested_too_deep_is_an_upstream_error() -> None:
    from tollgate.errors import UpstreamError
    from tollgate.providers.http_errors import decode_upstream_json

    depth = 200_000  # past msgspec's recursion limit on every Python (3.13's C limit is higher than 3.11's)
    with pytest.raises(UpstreamError, match="nested too deep"):
        decode_upstream_json(b'{"a":' + b"[" * depth + b"]" * depth + b"}")


@pytest.mark.parametrize("encoding", [None, "gzip"])
async def test_a_streamed_body_is_read_raw_or_decoded_as_encoded(encoding: str | None) -> None:
    import gzip

    events = [
        {"id": "u1", "model": "m-up", "choices": [{"index": 0, "delta": {"content": "Hé"}}]},
        {"id": "u1", "model": "m-up", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in events) + b"data: [DONE]\n\n"
    headers = {"content-type": "text/event-stream"}
    if encoding:
        body, headers["content-encoding"] = gzip.compress(body), encoding

    async def pieces() -> Any:
        for start in range(0, len(body), 5):  # many small reads: events cut mid-line and mid-character
            yield body[start : start + 5]

    transport = httpx.MockTransport(lambda request: httpx.Response(200, headers=headers, content=pieces()))
    config = Settings(openai_api_key="sk", openai_base_url="http://upstream.test/v1").provider("openai")
    async with httpx.AsyncClient(transport=transport) as client:
        chunks = [c async for c in OpenAICompatProvider(config, client).chat(make_call(stream=True))]
    assert [c for c in chunks if not isinstance(c, ResponseMeta)] == [TextDelta("Hé"), Finish("stop")]
    assert ResponseMeta(model="m-up", upstream_id="u1") in chunks
