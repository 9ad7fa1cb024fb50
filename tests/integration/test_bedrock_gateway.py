"""The openai SDK through the gateway to the fake Bedrock runtime, consumed by real boto3."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest

from tests.fakes.bedrock_server import FakeBedrock, ToolUse
from tests.fakes.server import ServerThread
from tollgate.config import Settings
from tollgate.wire import compaction

PROFILE = "us.anthropic.claude-3-5-haiku-20241022-v1:0"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBedrock]:
    with FakeBedrock() as fake:
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        yield fake


@pytest.fixture
def gateway(fake: FakeBedrock, start_gateway: Callable[..., ServerThread]) -> ServerThread:
    return start_gateway(Settings(default_provider="bedrock", bedrock_model=PROFILE))


@pytest.fixture
def sdk(gateway: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)


def test_converse_through_inference_profile(sdk: openai.OpenAI, fake: FakeBedrock) -> None:
    fake.script(texts=["Hello", " from", " Bedrock"], usage=(21, 3))
    completion = sdk.chat.completions.create(
        model="auto", messages=[{"role": "system", "content": "brief"}, {"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "Hello from Bedrock"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (21, 3)
    recorded = fake.requests[-1]
    assert (recorded.operation, recorded.model_id) == ("converse", PROFILE)
    assert recorded.body["system"] == [{"text": "brief"}]
    assert recorded.body["inferenceConfig"]["maxTokens"] == 1024


def test_converse_stream_is_incremental(sdk: openai.OpenAI, fake: FakeBedrock) -> None:
    fake.script(texts=["a", "b", "c", "d"], delay=0.25, usage=(5, 4))
    started = time.perf_counter()
    first = None
    chunks = []
    stream = sdk.chat.completions.create(
        model="bedrock/us.amazon.nova-lite-v1:0",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        chunks.append(chunk)
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
    total = time.perf_counter() - started
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "abcd"
    assert first is not None and first < total / 2
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert fake.requests[-1].model_id == "us.amazon.nova-lite-v1:0"


def test_streamed_tool_use(sdk: openai.OpenAI, fake: FakeBedrock) -> None:
    fake.script(texts=[], tool_use=ToolUse("get_weather", {"city": "Oslo"}, "tooluse_1"))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    chunks = list(
        sdk.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": "w?"}],
            tools=tools,  # type: ignore[arg-type]
            stream=True,
        )
    )
    calls = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert calls[0].id == "tooluse_1" and calls[0].function.name == "get_weather"
    assert "".join(c.function.arguments or "" for c in calls).replace(" ", "") == '{"city":"Oslo"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_throttling_is_429(gateway: ServerThread, fake: FakeBedrock) -> None:
    fake.script(error="ThrottlingException")
    for stream in (False, True):
        response = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "stream": stream},
            timeout=10,
        )
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "upstream_rate_limited"


def test_http_image_url_is_refused_for_bedrock(gateway: ServerThread, fake: FakeBedrock) -> None:
    content = [{"type": "image_url", "image_url": {"url": "https://example.test/cat.png"}}]
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions", json={"messages": [{"role": "user", "content": content}]}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[0].content[0].image_url"
    assert fake.requests == []  # tollgate never fetched the URL nor called Bedrock


def test_data_url_image_reaches_bedrock_as_bytes(gateway: ServerThread, fake: FakeBedrock) -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    content = [
        {"type": "text", "text": "what?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
    ]
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions", json={"messages": [{"role": "user", "content": content}]}
    )
    assert response.status_code == 200, response.text
    image = fake.requests[-1].body["messages"][0]["content"][1]["image"]
    assert image["format"] == "png" and image["source"]["bytes"] == png


def test_mid_stream_exception_is_an_error_event(gateway: ServerThread, fake: FakeBedrock) -> None:
    fake.script(texts=["a", "b"], stream_error="modelStreamErrorException")
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "stream": True},
        timeout=10,
    )
    frames = [line for line in response.text.splitlines() if line.startswith("data: ")]
    assert '"error"' in frames[-1] and "[DONE]" not in response.text


def test_codex_compaction_of_a_tool_history_through_bedrock(gateway: ServerThread, fake: FakeBedrock) -> None:
    """Codex compacts without tools; Converse refuses tool blocks without a toolConfig (the fake too)."""
    fake.script(texts=["Checked the weather."], usage=(30, 4))
    history = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
    ]
    response = httpx.post(
        f"{gateway.url}/v1/responses/compact",
        json={"model": "auto", "input": history, "tools": []},
        timeout=20,
    )
    assert response.status_code == 200, response.text
    output = response.json()["output"]
    assert output[0]["content"][0]["text"] == "weather?"
    assert compaction.summary_of(output[-1]) == "Checked the weather."
    tool_config = fake.requests[-1].body["toolConfig"]
    assert [tool["toolSpec"]["name"] for tool in tool_config["tools"]] == ["get_weather"]
