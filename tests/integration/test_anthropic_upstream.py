"""The openai SDK through the gateway to a fake Anthropic Messages upstream on a real socket."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import openai
import pytest

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import Script
from tests.fakes.server import ServerThread
from tollgate.config import Settings

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic()
    with ServerThread(fake) as server:
        fake.url = server.url  # type: ignore[attr-defined]
        yield fake


@pytest.fixture
def sdk(fake: FakeAnthropic, start_gateway: Callable[..., ServerThread]) -> openai.OpenAI:
    settings = Settings(
        default_provider="anthropic", claude_api_key="sk-ant-secret", claude_base_url=f"{fake.url}/v1"
    )  # type: ignore[attr-defined]
    gateway = start_gateway(settings)
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)


def test_non_streaming(sdk: openai.OpenAI, fake: FakeAnthropic) -> None:
    completion = sdk.chat.completions.create(
        model="claude-3-5-haiku-latest",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    )
    assert completion.choices[0].message.content == "Hello from fake"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (13, 3)
    path, headers, body = fake.requests[-1]
    assert path == "/v1/messages"
    assert headers["x-api-key"] == "sk-ant-secret" and headers["anthropic-version"] == "2023-06-01"
    assert body["system"] == "be brief" and body["max_tokens"] == 1024


def test_streaming_is_incremental_with_usage(sdk: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.script = Script(texts=["a", "b", "c", "d"], delay=0.25)
    started = time.perf_counter()
    first = None
    chunks = []
    for chunk in sdk.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    ):
        chunks.append(chunk)
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
    total = time.perf_counter() - started
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "abcd"
    assert first is not None and first < total / 2
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 13


def test_streamed_tool_use(sdk: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.script = Script(
        texts=["Checking."],
        tool_calls=[{"id": "toolu_1", "name": "get_weather", "arguments": ['{"city"', ': "Oslo"}']}],
    )
    chunks = list(
        sdk.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "w?"}], tools=TOOLS, stream=True
        )
    )  # type: ignore[arg-type]
    calls = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert calls[0].id == "toolu_1" and calls[0].function.name == "get_weather"
    assert "".join(c.function.arguments or "" for c in calls) == '{"city": "Oslo"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert fake.requests[-1][2]["tools"][0]["input_schema"]["properties"]["city"] == {"type": "string"}


def test_tool_round_trip(sdk: openai.OpenAI, fake: FakeAnthropic) -> None:
    sdk.chat.completions.create(
        model="auto",
        tools=TOOLS,
        messages=[  # type: ignore[arg-type]
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        ],
    )
    messages = fake.requests[-1][2]["messages"]
    assert messages[1]["content"][0] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "get_weather",
        "input": {"city": "Oslo"},
    }
    assert messages[2]["role"] == "user" and messages[2]["content"][0]["type"] == "tool_result"


def test_overloaded_mid_stream_is_an_error_event(sdk: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.script = Script(texts=["a", "b", "c"], fail_after=1)
    with pytest.raises(openai.APIError):
        list(
            sdk.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )


def test_upstream_auth_failure(sdk: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.script = Script(status=401)
    with pytest.raises(openai.APIStatusError) as info:
        sdk.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 502
    assert "credentials for claude" in str(info.value.message)
