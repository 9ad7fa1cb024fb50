"""The official anthropic SDK against POST /v1/messages, routed to Anthropic, OpenAI and Bedrock fakes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import pytest

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.bedrock_server import FakeBedrock, ToolUse
from tests.fakes.openai_upstream import FakeOpenAI, Script
from tests.fakes.server import ServerThread
from tollgate.config import Settings

PROFILE = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "the weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
HI: list[Any] = [{"role": "user", "content": "hi"}]


@dataclass
class Upstream:
    """One fake upstream behind the gateway, scripted and inspected the same way for every wire."""

    provider: str
    fake: FakeOpenAI | FakeAnthropic | FakeBedrock
    prompt_tokens: int

    def text(self, texts: list[str]) -> None:
        if isinstance(self.fake, FakeBedrock):
            self.fake.script(texts=texts, usage=(self.prompt_tokens, len(texts)))
        else:
            self.fake.script = Script(texts=texts)

    def tool(self, call_id: str, name: str, arguments: dict[str, Any]) -> None:
        if isinstance(self.fake, FakeBedrock):
            self.fake.script(texts=["Checking."], tool_use=ToolUse(name, arguments, call_id))
        else:
            raw = json.dumps(arguments)
            pieces = [raw[: len(raw) // 2], raw[len(raw) // 2 :]]
            self.fake.script = Script(
                texts=["Checking."], tool_calls=[{"id": call_id, "name": name, "arguments": pieces}]
            )

    def rate_limited(self) -> None:
        if isinstance(self.fake, FakeBedrock):
            self.fake.script(error="ThrottlingException")
        else:
            self.fake.script = Script(status=429)

    def last_body(self) -> dict[str, Any]:
        if isinstance(self.fake, FakeBedrock):
            return self.fake.requests[-1].body
        return self.fake.requests[-1][2]

    def tool_results(self) -> list[tuple[str, str]]:
        """(tool call id, result text) pairs of the last request, in the upstream's own shape."""
        messages = self.last_body()["messages"]
        if self.provider == "openai":
            return [(m["tool_call_id"], m["content"]) for m in messages if m["role"] == "tool"]
        blocks = [b for m in messages if isinstance(m["content"], list) for b in m["content"]]
        if self.provider == "claude":
            results = [b for b in blocks if b.get("type") == "tool_result"]
            return [(b["tool_use_id"], b["content"][0]["text"]) for b in results]
        results = [b["toolResult"] for b in blocks if "toolResult" in b]
        return [(r["toolUseId"], r["content"][0]["text"]) for r in results]


@pytest.fixture(params=["claude", "openai", "bedrock"])
def upstream(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Upstream]:
    if request.param == "bedrock":
        with FakeBedrock() as bedrock:
            for name, value in bedrock.env().items():
                monkeypatch.setenv(name, value)
            yield Upstream("bedrock", bedrock, 21)
        return
    fake = FakeAnthropic() if request.param == "claude" else FakeOpenAI()
    with ServerThread(fake) as server:
        fake.url = server.url  # type: ignore[union-attr]
        yield Upstream(request.param, fake, 13 if request.param == "claude" else 11)


def settings_for(upstream: Upstream, **extra: Any) -> Settings:
    if upstream.provider == "bedrock":
        return Settings(default_provider="bedrock", bedrock_model=PROFILE, **extra)
    url = f"{upstream.fake.url}/v1"  # type: ignore[union-attr]
    if upstream.provider == "claude":
        return Settings(default_provider="claude", claude_api_key="sk-ant", claude_base_url=url, **extra)  # type: ignore[arg-type]
    return Settings(default_provider="openai", openai_api_key="sk-oai", openai_base_url=url, **extra)  # type: ignore[arg-type]


@pytest.fixture
def gateway(upstream: Upstream, start_gateway: Callable[..., ServerThread]) -> ServerThread:
    return start_gateway(settings_for(upstream))


@pytest.fixture
def client(gateway: ServerThread) -> anthropic.Anthropic:
    # the SDK appends /v1/messages to its base URL
    return anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0)


def ask(client: anthropic.Anthropic, stream: bool) -> anthropic.types.Message:
    if not stream:
        return client.messages.create(model="auto", max_tokens=64, messages=HI)
    with client.messages.stream(model="auto", max_tokens=64, messages=HI) as events:
        return events.get_final_message()


def test_create_text_and_usage(client: anthropic.Anthropic, upstream: Upstream) -> None:
    upstream.text(["Hello", " from", " fake"])
    raw = client.messages.with_raw_response.create(
        model="auto", max_tokens=64, system="be brief", messages=HI, stop_sequences=["END"]
    )
    message = raw.parse()
    assert raw.headers["x-tollgate-provider"] == upstream.provider
    assert message.id == f"msg_{raw.headers['x-tollgate-request-id']}"
    assert (message.type, message.role, message.stop_reason) == ("message", "assistant", "end_turn")
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", "Hello from fake")]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (upstream.prompt_tokens, 3)
    assert "tollgate" in (message.model_extra or {})  # the cost object, next to Anthropic's fields


def test_stream_text(client: anthropic.Anthropic, upstream: Upstream) -> None:
    upstream.text(["a", "b", "c"])
    with client.messages.stream(model="auto", max_tokens=64, messages=HI) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert pieces == ["a", "b", "c"]
    assert final.content[0].type == "text" and final.content[0].text == "abc"
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (upstream.prompt_tokens, 3)


@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_answer(client: anthropic.Anthropic, upstream: Upstream, stream: bool) -> None:
    upstream.tool("toolu_9", "get_weather", {"city": "Oslo"})
    request: dict[str, Any] = {
        "model": "auto",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "weather in Oslo?"}],
        "tools": TOOLS,
        "tool_choice": {"type": "auto"},
    }
    if stream:
        with client.messages.stream(**request) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**request)
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    tool = message.content[1]
    assert tool.type == "tool_use"
    assert (tool.id, tool.name, tool.input) == ("toolu_9", "get_weather", {"city": "Oslo"})


def test_tool_result_reaches_the_upstream(client: anthropic.Anthropic, upstream: Upstream) -> None:
    upstream.text(["It is sunny."])
    message = client.messages.create(
        model="auto",
        max_tokens=64,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "weather in Oslo?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Oslo"}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "sunny"}],
            },
        ],
    )
    assert message.content[0].type == "text" and message.content[0].text == "It is sunny."
    assert upstream.tool_results() == [("toolu_9", "sunny")]


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_429_is_a_rate_limit_error(
    client: anthropic.Anthropic, upstream: Upstream, stream: bool
) -> None:
    upstream.rate_limited()
    with pytest.raises(anthropic.RateLimitError) as info:
        ask(client, stream)
    assert info.value.status_code == 429
    assert isinstance(info.value.body, dict) and info.value.body["type"] == "error"
    assert info.value.body["error"]["type"] == "rate_limit_error"


def test_missing_max_tokens_is_400_in_anthropic_shape(gateway: ServerThread, upstream: Upstream) -> None:
    response = httpx.post(f"{gateway.url}/v1/messages", json={"model": "auto", "messages": HI})
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]
    assert response.headers["x-tollgate-request-id"]


@pytest.mark.parametrize("upstream", ["openai"], indirect=True)
def test_provider_prefix_routes(client: anthropic.Anthropic, upstream: Upstream) -> None:
    upstream.text(["ok"])
    client.messages.create(model="openai/gpt-4o-mini", max_tokens=7, messages=HI)
    body = upstream.last_body()
    assert (body["model"], body["max_completion_tokens"]) == ("gpt-4o-mini", 7)


@pytest.mark.parametrize("upstream", ["claude"], indirect=True)
def test_invalid_field_is_sdk_bad_request(client: anthropic.Anthropic, upstream: Upstream) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="auto", max_tokens=8, messages=HI, extra_body={"temperature": 1.5})
    assert info.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": info.value.body["error"]["message"]},  # type: ignore[index]
    }
    assert "temperature" in info.value.message
    assert upstream.fake.requests == []  # type: ignore[union-attr]


@pytest.mark.parametrize("upstream", ["claude"], indirect=True)
def test_mid_stream_failure_is_an_error_event(client: anthropic.Anthropic, upstream: Upstream) -> None:
    upstream.fake.script = Script(texts=["a", "b", "c"], fail_after=1)  # type: ignore[union-attr]
    with pytest.raises(anthropic.APIStatusError) as info:
        ask(client, stream=True)
    assert isinstance(info.value.body, dict) and info.value.body["error"]["type"] == "overloaded_error"


@pytest.mark.parametrize("upstream", ["openai"], indirect=True)
def test_virtual_keys_via_x_api_key(upstream: Upstream, start_gateway: Callable[..., ServerThread]) -> None:
    settings = settings_for(upstream, admin_key="admin-secret", key_cache_seconds=0)
    gateway = start_gateway(settings, include_admin=True)
    created = httpx.post(
        f"{gateway.url}/admin/keys", json={"tenant": "acme"}, headers={"authorization": "Bearer admin-secret"}
    )
    assert created.status_code == 201, created.text
    good = anthropic.Anthropic(base_url=gateway.url, api_key=created.json()["key"], max_retries=0)
    upstream.text(["ok"])
    message = good.messages.create(model="auto", max_tokens=8, messages=HI)  # sent as x-api-key
    assert message.content[0].type == "text" and message.content[0].text == "ok"
    bad = anthropic.Anthropic(base_url=gateway.url, api_key="tg-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as info:
        bad.messages.create(model="auto", max_tokens=8, messages=HI)
    assert info.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": info.value.body["error"]["message"]},  # type: ignore[index]
    }
