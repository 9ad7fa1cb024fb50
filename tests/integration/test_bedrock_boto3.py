"""BedrockProvider with real boto3 against the fake Bedrock runtime (real HTTP, real eventstream frames)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.fakes.bedrock_server import FakeBedrock, ToolUse
from tests.ports import free_port
from tollgate.config import ProviderConfig
from tollgate.errors import (
    TollgateError,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamUnavailable,
)
from tollgate.providers.base import ChatCall, Chunk, Finish, ResponseMeta, TextDelta, ToolCallDelta, Usage
from tollgate.providers.bedrock import BedrockProvider
from tollgate.schemas.openai import ChatCompletionRequest

MODEL = "us.amazon.nova-lite-v1:0"
TIMEOUT = 15.0
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBedrock]:
    with FakeBedrock() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield server


def make_provider(max_concurrency: int = 4, read_timeout: float = 5.0) -> BedrockProvider:
    config = ProviderConfig(name="bedrock", base_url="", model=MODEL, max_tokens=256, region="us-east-1")
    return BedrockProvider(
        config, max_concurrency=max_concurrency, connect_timeout=2.0, read_timeout=read_timeout
    )


@pytest.fixture
async def provider(fake: FakeBedrock) -> AsyncIterator[BedrockProvider]:
    adapter = make_provider()
    yield adapter
    await adapter.aclose()


def make_call(stream: bool, model: str = MODEL, **body: Any) -> ChatCall:
    body.setdefault("messages", [{"role": "user", "content": "Hi"}])
    request = ChatCompletionRequest.model_validate({"stream": stream, **body})
    return ChatCall(request_id="req-1", provider="bedrock", model=model, max_tokens=128, request=request)


async def collect(provider: BedrockProvider, call: ChatCall) -> list[Chunk]:
    async with asyncio.timeout(TIMEOUT):
        return [chunk async for chunk in provider.chat(call)]


def text_of(chunks: list[Chunk]) -> str:
    return "".join(chunk.text for chunk in chunks if isinstance(chunk, TextDelta))


@pytest.mark.parametrize("stream", [True, False])
async def test_text(fake: FakeBedrock, provider: BedrockProvider, stream: bool) -> None:
    fake.script(texts=["Hello", " from", " Bedrock"], usage=(21, 3))
    chunks = await collect(
        provider,
        make_call(
            stream, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
        ),
    )
    meta = chunks[0]
    assert isinstance(meta, ResponseMeta)
    assert meta.model == MODEL
    assert meta.upstream_id  # the x-amzn-RequestId the fake sent
    assert text_of(chunks) == "Hello from Bedrock"
    assert chunks[-2:] == [Finish("stop"), Usage(21, 3)]
    if stream:
        assert [c for c in chunks if isinstance(c, TextDelta)] == [
            TextDelta("Hello"),
            TextDelta(" from"),
            TextDelta(" Bedrock"),
        ]
    (request,) = fake.requests
    assert request.operation == ("converse-stream" if stream else "converse")
    assert request.model_id == MODEL
    assert request.body == {
        "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 128},
    }
    assert request.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")


@pytest.mark.parametrize("stream", [True, False])
async def test_tool_use(fake: FakeBedrock, provider: BedrockProvider, stream: bool) -> None:
    fake.script(texts=["Let me look."], tool_use=ToolUse("get_weather", {"city": "Paris"}, "tooluse_1"))
    chunks = await collect(provider, make_call(stream, tools=[WEATHER], tool_choice="required"))
    calls = [chunk for chunk in chunks if isinstance(chunk, ToolCallDelta)]
    assert {call.index for call in calls} == {0}
    assert (calls[0].id, calls[0].name) == ("tooluse_1", "get_weather")
    assert json.loads("".join(call.arguments for call in calls)) == {"city": "Paris"}
    assert Finish("tool_calls") in chunks
    tool_config = fake.requests[0].body["toolConfig"]
    assert tool_config["toolChoice"] == {"any": {}}
    assert tool_config["tools"][0]["toolSpec"]["name"] == "get_weather"


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("ThrottlingException", UpstreamRateLimited),
        ("ValidationException", UpstreamBadRequest),
        ("AccessDeniedException", UpstreamAuthError),
        ("ServiceUnavailableException", UpstreamUnavailable),
    ],
)
async def test_http_errors(
    fake: FakeBedrock, provider: BedrockProvider, stream: bool, code: str, error: type[TollgateError]
) -> None:
    fake.script(error=code, error_message="scripted failure")
    with pytest.raises(error) as info:
        await collect(provider, make_call(stream))
    assert type(info.value) is error
    assert "scripted failure" in info.value.message
    assert len(fake.requests) == 1  # no retries: the gateway decides, not botocore


@pytest.mark.parametrize(
    ("exception", "error"),
    [
        ("modelStreamErrorException", UpstreamError),
        ("throttlingException", UpstreamRateLimited),
        ("internalServerException", UpstreamError),
    ],
)
async def test_mid_stream_exception_frame(
    fake: FakeBedrock, provider: BedrockProvider, exception: str, error: type[TollgateError]
) -> None:
    fake.script(texts=["partial", " answer"], stream_error=exception, error_message="model fell over")
    received: list[Chunk] = []

    async def consume() -> None:
        async with asyncio.timeout(TIMEOUT):
            async for chunk in provider.chat(make_call(True)):
                received.append(chunk)

    with pytest.raises(error) as info:
        await consume()
    assert type(info.value) is error
    assert "model fell over" in info.value.message
    assert text_of(received) == "partial answer"


@pytest.mark.parametrize(
    "model",
    [
        "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0",
    ],
)
async def test_inference_profiles_and_arns_reach_the_model_path(
    fake: FakeBedrock, provider: BedrockProvider, model: str
) -> None:
    await collect(provider, make_call(True, model=model))
    (request,) = fake.requests
    assert request.model_id == model
    assert request.path.endswith("/converse-stream")
    assert request.path.count("/") == 3  # one path segment for the id, slashes and all


async def test_stream_is_delivered_incrementally(fake: FakeBedrock, provider: BedrockProvider) -> None:
    fake.script(texts=["one", " two", " three"], delay=0.3)
    arrivals: list[tuple[float, Chunk]] = []
    async with asyncio.timeout(TIMEOUT):
        async for chunk in provider.chat(make_call(True)):
            arrivals.append((time.monotonic(), chunk))
    first_text = next(at for at, chunk in arrivals if isinstance(chunk, TextDelta))
    last = arrivals[-1][0]
    # 7 events 0.3 s apart: the first text is ~1.5 s ahead of the end; buffering would make that ~0
    assert last - first_text > 1.0
    assert text_of([chunk for _, chunk in arrivals]) == "one two three"


async def test_closing_the_consumer_early_frees_the_worker(fake: FakeBedrock) -> None:
    provider = make_provider(max_concurrency=1)  # one worker: a stuck one would block the next call
    try:
        fake.script(texts=[f"piece{i} " for i in range(20)], delay=1.0)
        stream = provider.chat(make_call(True))
        async with asyncio.timeout(TIMEOUT):
            async for chunk in stream:
                if isinstance(chunk, TextDelta):
                    break
            started = time.monotonic()
            await stream.aclose()  # type: ignore[attr-defined]
            fake.script(texts=["next"])
            chunks = await collect(provider, make_call(False))
            # the worker was woken out of its blocked read, not left waiting for the next event (1 s away)
            assert time.monotonic() - started < 0.8
            assert await asyncio.to_thread(fake.wait_for_disconnect, 5.0)
        assert text_of(chunks) == "next"
        assert len(fake.requests) == 2
    finally:
        await provider.aclose()


async def test_client_is_built_once_and_reused(fake: FakeBedrock, provider: BedrockProvider) -> None:
    await collect(provider, make_call(True))
    client = provider._boto.current
    await collect(provider, make_call(False))
    assert client is not None
    assert provider._boto.current is client


async def test_unreachable_endpoint_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, fake: FakeBedrock
) -> None:
    port = free_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", f"http://127.0.0.1:{port}")
    provider = make_provider()
    try:
        with pytest.raises(UpstreamUnavailable):
            await collect(provider, make_call(True))
    finally:
        await provider.aclose()


async def test_closed_provider_refuses_calls(fake: FakeBedrock) -> None:
    provider = make_provider()
    await provider.aclose()
    with pytest.raises(UpstreamUnavailable):
        await collect(provider, make_call(True))


@pytest.mark.parametrize("stream", [True, False])
async def test_shutdown_ends_queued_calls(fake: FakeBedrock, stream: bool) -> None:
    provider = make_provider(max_concurrency=1)
    fake.script(texts=["a", "b", "c"], delay=0.5)
    busy = provider.chat(make_call(True))
    async with asyncio.timeout(TIMEOUT):
        await anext(busy)  # the only worker is now pumping this stream
        queued = asyncio.create_task(collect(provider, make_call(stream)))
        await asyncio.sleep(0.1)
        await provider.aclose()
        with pytest.raises(UpstreamUnavailable):
            await queued
        await busy.aclose()  # type: ignore[attr-defined]
