"""The official openai SDK against tollgate in front of a real llama.cpp llama-server (SmolLM2-135M).

Run with ``pytest -m slow tests/e2e``. Answers stay short: SmolLM2-135M (Q4_1) makes 60-120 tokens/s
on two busy cores.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.conftest import LlamaServer
from tests.fakes.server import ServerThread

pytestmark = pytest.mark.slow

PROMPT = [{"role": "user", "content": "Write a short story about a dragon who learns to bake bread."}]


def sdk(server: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="open-mode", max_retries=0, timeout=60.0)


def extension(model: Any) -> dict[str, Any]:
    """tollgate's ``tollgate`` extension object on a response or chunk (empty when absent)."""
    return dict((model.model_extra or {}).get("tollgate") or {})


def test_non_streamed_completion_has_text_and_real_usage(gateway: ServerThread) -> None:
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="auto", messages=PROMPT, max_tokens=16, temperature=0
    )
    completion = raw.parse()
    assert raw.headers["x-tollgate-provider"] == "llama_cpp"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert completion.model == "smollm2"  # llama-server reports its --alias (the GGUF path without one)
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert 0 < usage.completion_tokens <= 16
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert "usage_estimated" not in extension(completion)  # llama.cpp's own counts, not tollgate's guess


def test_streamed_completion_yields_chunks_then_usage(gateway: ServerThread) -> None:
    stream = sdk(gateway).chat.completions.create(
        model="auto",
        messages=PROMPT,
        max_tokens=16,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) >= 3
    assert "".join(content).strip()
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"])
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens > 0
    assert 0 < last.usage.completion_tokens <= 16
    assert "usage_estimated" not in extension(last)
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_wire_format_ends_with_done(gateway: ServerThread) -> None:
    """The raw SSE lines (still through the SDK): data chunks, the usage chunk, then ``[DONE]``."""
    with sdk(gateway).chat.completions.with_streaming_response.create(
        model="auto",
        messages=PROMPT,
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        data = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    payloads = [json.loads(item) for item in data[:-1]]
    assert all(p["object"] == "chat.completion.chunk" for p in payloads)
    assert sum(1 for p in payloads if p["choices"] and p["choices"][0]["delta"].get("content")) >= 2
    assert payloads[-1]["choices"] == []
    assert payloads[-1]["usage"]["completion_tokens"] > 0


def test_llama_cpp_passthrough_fields_are_accepted(gateway: ServerThread) -> None:
    completion = sdk(gateway).chat.completions.create(
        model="auto",
        messages=PROMPT,
        max_tokens=8,
        temperature=0,
        extra_body={"repeat_penalty": 1.1, "cache_prompt": True, "top_k": 40},
    )
    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0


def test_llama_cpp_passthrough_fields_reach_llama_server(gateway: ServerThread) -> None:
    """A llama.cpp-only field with a visible effect: a GBNF grammar that allows one of two answers."""
    completion = sdk(gateway).chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "Is the sky blue?"}],
        max_tokens=16,
        extra_body={"grammar": 'root ::= "yes" | "no"'},
    )
    assert completion.choices[0].message.content in ("yes", "no")
    assert completion.choices[0].finish_reason == "stop"


def test_max_tokens_is_respected(gateway: ServerThread) -> None:
    completion = sdk(gateway).chat.completions.create(
        model="auto", messages=PROMPT, max_tokens=5, temperature=0
    )
    assert completion.usage is not None
    assert 0 < completion.usage.completion_tokens <= 5
    assert completion.choices[0].finish_reason == "length"


def test_default_max_tokens_cap_applies(gateway: ServerThread) -> None:
    """No max_tokens from the client: tollgate sends its configured cap (32 in these fixtures)."""
    completion = sdk(gateway).chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "Tell me a very long story about the sea."}],
        temperature=0,
    )
    assert completion.usage is not None
    assert 0 < completion.usage.completion_tokens <= 32


def test_wrong_llama_cpp_key_is_a_502_naming_the_upstream(gateway_bad_key: ServerThread) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(gateway_bad_key).chat.completions.create(model="auto", messages=PROMPT, max_tokens=5)
    assert caught.value.status_code == 502
    error = caught.value.body
    assert isinstance(error, dict)
    assert "upstream rejected tollgate's credentials for llama_cpp" in error["message"]
    assert error["type"] == "upstream_error"


def test_wrong_llama_cpp_key_streamed_is_a_502_too(gateway_bad_key: ServerThread) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(gateway_bad_key).chat.completions.create(model="auto", messages=PROMPT, max_tokens=5, stream=True)
    assert caught.value.status_code == 502
    assert "upstream rejected tollgate's credentials for llama_cpp" in str(caught.value)


def test_llama_server_itself_streams_usage(llama_server: LlamaServer) -> None:
    """The premise of this suite: llama-server sends usage when asked (so tollgate need not estimate)."""
    body = {
        "model": "smollm2",
        "messages": PROMPT,
        "max_tokens": 4,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"Authorization": f"Bearer {llama_server.api_key}"}
    with httpx.stream(
        "POST", f"{llama_server.url}/v1/chat/completions", json=body, headers=headers, timeout=60
    ) as response:
        assert response.status_code == 200
        data = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    usage = [json.loads(item)["usage"] for item in data[:-1] if json.loads(item).get("usage")]
    assert usage
    assert usage[-1]["completion_tokens"] > 0
