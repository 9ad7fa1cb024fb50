"""The official openai SDK against the gateway under uvicorn, over a fake OpenAI-compatible upstream."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Script
from tests.fakes.server import ServerThread
from tollgate.config import Settings

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def gateway(fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread]) -> ServerThread:
    settings = Settings(
        default_provider="openai",
        openai_api_key="sk-upstream-secret",
        openai_base_url=f"{fake_openai.url}/v1",
        llama_cpp_base_url=fake_openai.url,
        provider_timeout_seconds=2.0,
    )
    return start_gateway(settings)


def client(gateway: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused-in-open-mode", max_retries=0)


def test_non_streaming_answer_usage_and_headers(gateway: ServerThread, fake_openai: FakeOpenAI) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello from fake"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == 11
    assert raw.headers["x-tollgate-provider"] == "openai"
    assert len(raw.headers["x-tollgate-request-id"]) == 32
    path, headers, body = fake_openai.requests[-1]
    assert path == "/v1/chat/completions"
    assert headers["authorization"] == "Bearer sk-upstream-secret"
    assert body["max_completion_tokens"] == 1024  # the configured default cap is always sent


def test_streaming_with_usage_chunk(gateway: ServerThread, fake_openai: FakeOpenAI) -> None:
    stream = client(gateway).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from fake"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3
    assert fake_openai.requests[-1][2]["stream_options"] == {"include_usage": True}


async def test_async_streaming(gateway: ServerThread) -> None:
    async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0) as aclient:
        stream = await aclient.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(parts) == "Hello from fake"


async def test_async_non_streaming(gateway: ServerThread) -> None:
    async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0) as aclient:
        completion = await aclient.chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    assert completion.choices[0].message.content == "Hello from fake"


def test_tool_calls_non_streaming(gateway: ServerThread, fake_openai: FakeOpenAI) -> None:
    fake_openai.script = Script(
        texts=[], tool_calls=[{"id": "call_1", "name": "get_weather", "arguments": ['{"city":', ' "Paris"}']}]
    )
    completion = client(gateway).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "weather?"}],
        tools=TOOLS,
        tool_choice="auto",
    )
    call = completion.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_1",
        "get_weather",
        '{"city": "Paris"}',
    )
    assert completion.choices[0].finish_reason == "tool_calls"
    assert fake_openai.requests[-1][2]["tools"][0]["function"]["name"] == "get_weather"


def test_tool_call_argument_deltas_stream_through(gateway: ServerThread, fake_openai: FakeOpenAI) -> None:
    fake_openai.script = Script(
        texts=[],
        tool_calls=[{"id": "call_1", "name": "get_weather", "arguments": ['{"ci', 'ty": "Pa', 'ris"}']}],
    )
    chunks = list(
        client(gateway).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS, stream=True
        )
    )
    deltas = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert [d.function.arguments for d in deltas] == ['{"ci', 'ty": "Pa', 'ris"}']
    assert deltas[0].id == "call_1" and deltas[0].function.name == "get_weather"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_results_are_forwarded(gateway: ServerThread, fake_openai: FakeOpenAI) -> None:
    client(gateway).chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
    )
    sent = fake_openai.requests[-1][2]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_1"
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}


def test_streaming_is_incremental(gateway: ServerThread, fake_openai: FakeOpenAI) -> None:
    fake_openai.script = Script(texts=["a", "b", "c", "d", "e"], delay=0.3)
    started = time.perf_counter()
    stream = client(gateway).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    first_content = None
    for chunk in stream:
        if first_content is None and chunk.choices and chunk.choices[0].delta.content:
            first_content = time.perf_counter() - started
    total = time.perf_counter() - started
    assert first_content is not None
    assert total >= 1.5
    assert first_content < total / 2  # the first token arrived long before the upstream finished


def test_unknown_fields_pass_through_and_extensions_are_stripped(
    gateway: ServerThread, fake_openai: FakeOpenAI
) -> None:
    client(gateway).chat.completions.create(
        model="llama_cpp/smollm2",
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"repeat_penalty": 1.1, "cache_prompt": True, "session_id": "s1", "pool": "default"},
    )
    path, _, body = fake_openai.requests[-1]
    assert path == "/v1/chat/completions"
    assert body["model"] == "smollm2"
    assert body["repeat_penalty"] == 1.1 and body["cache_prompt"] is True
    assert "session_id" not in body and "pool" not in body and "provider" not in body
    assert body["max_tokens"] == 1024


def test_stream_without_upstream_usage_is_estimated(gateway: ServerThread, fake_openai: FakeOpenAI) -> None:
    fake_openai.script = Script(texts=["one", " two", " three"], usage=False)
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "count to three"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        timeout=10,
    )
    frames = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    usage_chunk = httpx.Response(200, content=frames[-2]).json()
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 3
    assert usage_chunk["usage"]["prompt_tokens"] > 0
    assert usage_chunk["tollgate"]["usage_estimated"] is True
    # gpt-4o-mini: 9 in x 0.15 + 3 out x 0.60 micro-USD per token = 3.15 -> 3 micro-USD
    assert usage_chunk["tollgate"]["cost_usd"] == "0.000003"


def test_upstream_connections_are_reused_after_streams(
    gateway: ServerThread, fake_openai: FakeOpenAI
) -> None:
    sdk = client(gateway)
    for _ in range(3):
        list(
            sdk.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
    assert len(set(fake_openai.client_ports)) == 1


def test_upstream_cookies_are_never_replayed(gateway: ServerThread, fake_openai: FakeOpenAI) -> None:
    fake_openai.script = Script(headers={"set-cookie": "session=tenant-a; Path=/"})
    sdk = client(gateway)
    sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert "cookie" not in fake_openai.requests[-1][1]
