"""Legacy /v1/completions: parsing into a marked chat request, the /completions body and its parsing,
and the text_completion rendering (JSON and SSE frames)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tollgate.api.completions import LEGACY_COMPLETIONS
from tollgate.api.errors import error_payload
from tollgate.config import Settings
from tollgate.errors import BadRequest, UpstreamError
from tollgate.lifecycle import Outcome
from tollgate.providers.base import ChatCall, Finish, ResponseMeta, TextDelta, Usage
from tollgate.providers.openai_compat import (
    OpenAICompatProvider,
    endpoint,
    legacy_parse_chunk,
    legacy_parse_response,
    legacy_to_upstream,
    to_upstream,
)
from tollgate.schemas.openai import ChatCompletionRequest
from tollgate.streaming import ResponseBuilder
from tollgate.wire.completions import CompletionEncoder, prompt_text, render


def call_for(raw: dict[str, Any], provider: str = "openai", max_tokens: int = 64) -> ChatCall:
    return ChatCall("r1", provider, "m-1", max_tokens, LEGACY_COMPLETIONS.parse(json.dumps(raw).encode()))


def frames(raw: list[bytes]) -> list[Any]:
    return [json.loads(f[6:]) if f != b"data: [DONE]\n\n" else "[DONE]" for f in raw]


# ---------------------------------------------------------------------------------------------- parse


def test_prompt_forms() -> None:
    assert prompt_text("hi") == "hi"
    assert prompt_text(["hi"]) == "hi"
    for bad in (["a", "b"], [1, 2], [[1, 2]], 5, None, []):
        with pytest.raises(BadRequest) as info:
            prompt_text(bad)
        assert info.value.param == "prompt"


def test_parse_marks_a_legacy_completion() -> None:
    call = call_for({"model": "x", "prompt": "Say hi", "echo": True, "provider": "openai", "pool": "p1"})
    assert call.legacy_prompt == "Say hi"
    assert [(m.role, m.content) for m in call.request.messages] == [("user", "Say hi")]
    assert call.passthrough() == {"echo": True}  # no prompt, no extensions
    assert call.request.pool == "p1"


@pytest.mark.parametrize("field", ["messages", "tools", "session_id", "loop_mode"])
def test_chat_only_fields_are_refused(field: str) -> None:
    with pytest.raises(BadRequest) as info:
        LEGACY_COMPLETIONS.parse(json.dumps({"prompt": "a", field: "x"}).encode())
    assert info.value.param == field


def test_plain_chat_calls_are_not_legacy() -> None:
    request = ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": "hi"}]})
    assert ChatCall("r", "openai", "m", 1, request).legacy_prompt is None


def test_the_mode_survives_a_rebuilt_call() -> None:
    call = call_for({"prompt": "p"})
    rebuilt = ChatCall(call.request_id, "claude", "other", call.max_tokens, call.request)  # e.g. a fallback
    assert rebuilt.legacy_prompt == "p"


# ------------------------------------------------------------------------------------- upstream body


def test_legacy_body() -> None:
    call = call_for(
        {
            "prompt": "p",
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": "\n",
            "user": "u",
            "suffix": "s",
            "stream": True,
        },
        provider="openai",
    )
    assert legacy_to_upstream(call) == {
        "suffix": "s",
        "model": "m-1",
        "prompt": "p",
        "max_tokens": 64,  # the legacy endpoint reads max_tokens, openai included
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": "\n",
        "user": "u",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize("provider", ["openai", "openrouter", "ollama", "llama_cpp"])
def test_legacy_body_drops_fields_that_change_the_cap_the_price_or_the_model(provider: str) -> None:
    risky = {"best_of": 20, "n_predict": 600, "service_tier": "priority", "models": ["x/y"], "options": {}}
    body = legacy_to_upstream(call_for({"prompt": "p", "echo": True, **risky}, provider=provider))
    assert not set(risky) & set(body) and body["echo"] is True and body["max_tokens"] == 64


def test_legacy_body_needs_a_legacy_call() -> None:
    request = ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": "hi"}]})
    with pytest.raises(ValueError, match="not a legacy"):
        legacy_to_upstream(ChatCall("r", "openai", "m", 1, request))


def test_chat_body_of_a_legacy_call_is_plain_chat() -> None:
    body = to_upstream(call_for({"prompt": "p"}, provider="ollama"))
    assert body["messages"] == [{"role": "user", "content": "p"}] and "prompt" not in body


def test_legacy_endpoints() -> None:
    settings = Settings(openai_base_url="https://o/v1", ollama_base_url="http://l:11434")
    assert endpoint(settings.provider("openai"), "/completions") == "https://o/v1/completions"
    assert endpoint(settings.provider("ollama"), "/completions") == "http://l:11434/v1/completions"


def test_parse_legacy_response() -> None:
    payload = {
        "id": "cmpl-1",
        "model": "m-2",
        "choices": [{"text": "Hi", "index": 0, "finish_reason": "length", "logprobs": None}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    assert legacy_parse_response(payload) == [
        ResponseMeta("m-2", "cmpl-1"),
        TextDelta("Hi"),
        Finish("length"),
        Usage(3, 1),
    ]
    assert legacy_parse_response({"choices": [{"text": ""}]})[-1] == Finish("stop")
    with pytest.raises(UpstreamError):
        legacy_parse_response({"choices": []})


def test_parse_legacy_chunks() -> None:
    assert legacy_parse_chunk({"choices": [{"text": "a", "finish_reason": None}]}) == [TextDelta("a")]
    assert legacy_parse_chunk({"choices": [{"text": "", "finish_reason": "stop"}]}) == [Finish("stop")]
    usage = {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 5}}
    assert legacy_parse_chunk(usage) == [Usage(2, 5)]
    with pytest.raises(UpstreamError):
        legacy_parse_chunk({"error": {"message": "boom"}})


async def test_provider_sends_legacy_calls_to_completions() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={"choices": [{"text": "ok", "finish_reason": "stop"}]})

    settings = Settings(openai_api_key="k", openai_base_url="https://o/v1")
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        provider = OpenAICompatProvider(settings.provider("openai"), client)
        chunks = [c async for c in provider.chat(call_for({"prompt": "p"}))]
    assert seen == ["/v1/completions"]
    assert TextDelta("ok") in chunks


# ------------------------------------------------------------------------------------------- render


def builder_with(call: ChatCall, *chunks: Any) -> ResponseBuilder:
    builder = ResponseBuilder(call)
    for chunk in chunks:
        builder.add(chunk)
    return builder


def test_render() -> None:
    call = call_for({"prompt": "p"})
    builder = builder_with(call, ResponseMeta("m-9"), TextDelta("He"), TextDelta("llo"), Finish("tool_calls"))
    body = render(builder, Outcome("ok", Usage(3, 2)), {"cost_usd": "0.000001"})
    assert body["id"] == "cmpl-r1" and body["object"] == "text_completion" and body["model"] == "m-9"
    assert body["choices"] == [{"index": 0, "text": "Hello", "finish_reason": "stop", "logprobs": None}]
    assert body["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "total_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert body["tollgate"] == {"cost_usd": "0.000001"}


def test_stream_frames() -> None:
    call = call_for({"prompt": "p", "stream": True, "stream_options": {"include_usage": True}})
    encoder = CompletionEncoder(call, error_payload)
    assert encoder.start() == []
    out = (
        encoder.chunk(ResponseMeta("m-9")) + encoder.chunk(TextDelta("Hi")) + encoder.chunk(Finish("length"))
    )
    builder = builder_with(call, TextDelta("Hi"), Finish("length"))
    out += encoder.end(builder, Outcome("ok", Usage(4, 1)), {})
    parsed = frames(out)
    assert [f["choices"][0] for f in parsed[:2]] == [
        {"index": 0, "text": "Hi", "finish_reason": None, "logprobs": None},
        {"index": 0, "text": "", "finish_reason": "length", "logprobs": None},
    ]
    assert parsed[0]["object"] == "text_completion" and parsed[0]["model"] == "m-9"
    assert parsed[2]["choices"] == [] and parsed[2]["usage"]["total_tokens"] == 5
    assert parsed[3] == "[DONE]"


def test_stream_end_without_finish_and_error() -> None:
    call = call_for({"prompt": "p", "stream": True})
    encoder = CompletionEncoder(call, error_payload)
    parsed = frames(encoder.end(builder_with(call, TextDelta("x")), Outcome("ok", Usage(1, 1)), {}))
    assert parsed[0]["choices"][0]["finish_reason"] == "stop" and parsed[1] == "[DONE]"
    (error,) = frames(encoder.error(UpstreamError("boom")))
    assert error["error"]["message"] == "boom" and error["error"]["type"] == "upstream_error"
