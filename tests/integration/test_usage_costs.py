"""Cached and reasoning tokens, per upstream, on every endpoint in its own shape, priced at their own rates:
the cost of a streamed answer equals the cost of the same answer buffered (OpenAI-compatible, OpenAI's
native Responses API, Anthropic, Bedrock), read back from the audit log, whose chain still verifies.

Each fake upstream reports a usage with cache reads, cache writes and (where the format has them) reasoning
tokens; the real openai and anthropic SDKs parse what the gateway answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.bedrock_server import FakeBedrock
from tests.fakes.openai_responses_upstream import FakeOpenAIResponses
from tests.fakes.openai_upstream import Script
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import ADMIN_KEY, AUDIT_KEY, Gateway
from tollgate.config import Settings

# USD per million tokens = micro-USD per token: every kind of token at its own rate
RATES = {"input": "1", "output": "2", "cache_read": "0.5", "cache_write": "3", "reasoning": "4"}
PROFILE = "us.anthropic.claude-3-5-haiku-20241022-v1:0"  # the packaged table: 0.80, 4.00, 0.08, 1.00

OPENAI_USAGE = {  # prompt_tokens holds the cached and written tokens, completion_tokens the reasoning
    "prompt_tokens": 1000,
    "completion_tokens": 300,
    "total_tokens": 1300,
    "prompt_tokens_details": {"cached_tokens": 600, "cache_write_tokens": 100},
    "completion_tokens_details": {"reasoning_tokens": 200},
}
OPENAI_COST = 300 * 1 + 600 * 0.5 + 100 * 3 + 100 * 2 + 200 * 4  # 1,900 micro-USD
ANTHROPIC_USAGE = {  # input_tokens leaves the cache reads and writes out
    "input_tokens": 400,
    "cache_read_input_tokens": 1000,
    "cache_creation_input_tokens": 200,
    "output_tokens": 50,
}
ANTHROPIC_COST = 400 * 1 + 1000 * 0.5 + 200 * 3 + 50 * 2  # 1,600
RESPONSES_COST = (
    45  # the fake's 21 in (5 cached), 9 out (4 reasoning): 16 + 2.5 + 10 + 16 = 44.5, rounded once
)
BEDROCK_COST = 400 * 0.80 + 1000 * 0.08 + 200 * 1.00 + 50 * 4.00  # 800


@pytest.fixture
def gw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start_gateway: Callable[..., ServerThread]
) -> Iterator[Gateway]:
    claude_rates = {**RATES, "cache_write_1h": "5"}
    prices = {"openai": {"gpt-4o-mini": RATES, "gpt-5": RATES}, "claude": {"claude-sonnet-4-5": claude_rates}}
    (tmp_path / "prices.json").write_text(json.dumps(prices))
    openai_fake, claude_fake = FakeOpenAIResponses(), FakeAnthropic()
    with (
        ServerThread(openai_fake) as openai_server,
        ServerThread(claude_fake) as claude_server,
        FakeBedrock() as bedrock,
    ):
        for name, value in bedrock.env().items():
            monkeypatch.setenv(name, value)
        settings = Settings(
            default_provider="openai",
            openai_api_key="sk-upstream",
            openai_base_url=f"{openai_server.url}/v1",
            claude_api_key="sk-ant",
            claude_base_url=f"{claude_server.url}/v1",
            bedrock_model=PROFILE,
            admin_key=ADMIN_KEY,
            audit_key=AUDIT_KEY,
            key_cache_seconds=0,
            pricing_file=str(tmp_path / "prices.json"),
        )
        server = start_gateway(settings, include_admin=True)
        gateway = Gateway(server, openai_fake.chat)  # its /v1/chat/completions
        gateway.native = openai_fake  # type: ignore[attr-defined]
        gateway.claude = claude_fake  # type: ignore[attr-defined]
        gateway.bedrock = bedrock  # type: ignore[attr-defined]
        yield gateway


def field(model: Any, name: str) -> Any:
    """A field the SDK declares, or one it keeps as an extra (depending on the SDK's version)."""
    return getattr(model, name, None) or (model.model_extra or {}).get(name)


def audited(gw: Gateway, key: str) -> list[dict[str, Any]]:
    body = gw.get(key, "/v1/audit").json()
    assert body["chain_valid"] is True, body["verification"]
    return list(body["entries"])


def both_costs(gw: Gateway, key: str) -> tuple[int, int]:
    """The buffered answer's cost and the streamed one's, from the audit log (oldest first)."""
    entries = audited(gw, key)
    assert [e["status"] for e in entries] == ["ok", "ok"]
    assert entries[0]["details"] == entries[1]["details"]  # the cached and reasoning parts, audited
    return entries[0]["cost_micro_usd"], entries[1]["cost_micro_usd"]


def test_openai_compatible_chat(gw: Gateway) -> None:
    gw.upstream.script = Script(texts=["Hi", " there"], usage_override=OPENAI_USAGE)
    key = gw.new_key("acme")
    sdk = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
    ask: dict[str, Any] = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    buffered = sdk.chat.completions.create(**ask)
    usage = buffered.usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (1000, 300)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 600
    assert (
        usage.completion_tokens_details is not None
        and usage.completion_tokens_details.reasoning_tokens == 200
    )
    assert field(usage.prompt_tokens_details, "cache_write_tokens") == 100
    chunks = list(sdk.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
    streamed = chunks[-1].usage
    assert streamed is not None and streamed.model_dump() == usage.model_dump()
    assert (
        buffered.model_extra["tollgate"]["cost_usd"]
        == chunks[-1].model_extra["tollgate"]["cost_usd"]
        == "0.001900"
    )
    assert both_costs(gw, key) == (OPENAI_COST, OPENAI_COST)
    assert audited(gw, key)[0]["details"] == {
        "cached_tokens": 600,
        "cache_write_tokens": 100,
        "reasoning_tokens": 200,
    }


def test_openai_compatible_legacy_completions(gw: Gateway) -> None:
    gw.upstream.script = Script(texts=["Hi", " there"], usage_override=OPENAI_USAGE)
    key = gw.new_key("acme")
    sdk = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
    buffered = sdk.completions.create(model="openai/gpt-4o-mini", prompt="say hi")
    chunks = list(
        sdk.completions.create(
            model="openai/gpt-4o-mini", prompt="say hi", stream=True, stream_options={"include_usage": True}
        )
    )
    for usage in (buffered.usage, chunks[-1].usage):
        assert usage is not None and usage.prompt_tokens_details is not None
        assert usage.prompt_tokens_details.cached_tokens == 600
        assert usage.completion_tokens_details is not None
        assert usage.completion_tokens_details.reasoning_tokens == 200
    assert [path for path, _, _ in gw.upstream.requests] == ["/v1/completions", "/v1/completions"]
    assert both_costs(gw, key) == (OPENAI_COST, OPENAI_COST)


def test_native_responses(gw: Gateway) -> None:
    key = gw.new_key("acme")
    sdk = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
    buffered = sdk.responses.create(model="gpt-5", input="hi")
    events = list(sdk.responses.create(model="gpt-5", input="hi", stream=True))
    streamed = events[-1].response  # type: ignore[union-attr]
    for usage in (buffered.usage, streamed.usage):
        assert usage is not None and usage.input_tokens_details.cached_tokens == 5
        assert usage.output_tokens_details.reasoning_tokens == 4
    assert [path for path, _, _ in gw.native.requests] == ["/v1/responses", "/v1/responses"]  # type: ignore[attr-defined]
    assert both_costs(gw, key) == (RESPONSES_COST, RESPONSES_COST)


def test_anthropic_messages_and_chat(gw: Gateway) -> None:
    gw.claude.script = Script(texts=["Hi", " there"], usage_override=ANTHROPIC_USAGE)  # type: ignore[attr-defined]
    key = gw.new_key("acme")
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)
    ask: dict[str, Any] = {
        "model": "claude/claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
    buffered = client.messages.create(**ask)
    with client.messages.stream(**ask) as stream:
        streamed = stream.get_final_message()
    for usage in (buffered.usage, streamed.usage):
        assert (usage.input_tokens, usage.output_tokens) == (400, 50)
        assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (1000, 200)
    assert both_costs(gw, key) == (ANTHROPIC_COST, ANTHROPIC_COST)
    # the same upstream usage in the chat shape: prompt_tokens includes the cache reads and writes
    chat = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0).chat.completions.create(
        model="claude/claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.usage is not None and chat.usage.prompt_tokens == 1600
    assert (
        chat.usage.prompt_tokens_details is not None
        and chat.usage.prompt_tokens_details.cached_tokens == 1000
    )
    assert audited(gw, key)[-1]["cost_micro_usd"] == ANTHROPIC_COST


def test_bedrock_converse_and_stream(gw: Gateway) -> None:
    gw.bedrock.script(texts=["Hi", " there"], usage=(400, 50), cache=(1000, 200))  # type: ignore[attr-defined]
    key = gw.new_key("acme")
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)
    ask: dict[str, Any] = {
        "model": f"bedrock/{PROFILE}",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
    buffered = client.messages.create(**ask)
    with client.messages.stream(**ask) as stream:
        streamed = stream.get_final_message()
    for usage in (buffered.usage, streamed.usage):
        assert (usage.input_tokens, usage.output_tokens) == (400, 50)
        assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (1000, 200)
    assert [r.operation for r in gw.bedrock.requests] == ["converse", "converse-stream"]  # type: ignore[attr-defined]
    assert both_costs(gw, key) == (BEDROCK_COST, BEDROCK_COST)
    # the Responses shape over the chat translation: input_tokens includes the cached ones
    response = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0).responses.create(
        model=f"bedrock/{PROFILE}", input="hi"
    )
    assert response.usage is not None and response.usage.input_tokens == 1600
    assert response.usage.input_tokens_details.cached_tokens == 1000
    assert field(response.usage.input_tokens_details, "cache_write_tokens") == 200


# 1-hour cache writes (Anthropic's ``cache_control: {"ttl": "1h"}``) at their own rate: of 200 writes, 150
# had a 1-hour TTL. The rates file prices them at 5 micro-USD for claude-sonnet-4-5 (the fixture).
ANTHROPIC_1H_USAGE = {
    **ANTHROPIC_USAGE,
    "cache_creation": {"ephemeral_5m_input_tokens": 50, "ephemeral_1h_input_tokens": 150},
}
ANTHROPIC_1H_COST = 400 * 1 + 1000 * 0.5 + 50 * 3 + 150 * 5 + 50 * 2  # 1,900 (1,600 with every write at 5m)
BEDROCK_1H_COST = 400 * 0.80 + 1000 * 0.08 + 50 * 1.00 + 150 * 1.60 + 50 * 4.00  # 890 (the packaged 2x input)


def chat_costs(gw: Gateway, key: str, model: str) -> list[Any]:
    """The chat endpoint, buffered then streamed: both usages."""
    chat = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0).chat.completions
    ask: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    buffered = chat.create(**ask)
    chunks = list(chat.create(**ask, stream=True, stream_options={"include_usage": True}))
    return [buffered.usage, chunks[-1].usage]


def messages_usages(gw: Gateway, key: str, model: str) -> list[Any]:
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)
    ask: dict[str, Any] = {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    buffered = client.messages.create(**ask)
    with client.messages.stream(**ask) as stream:
        streamed = stream.get_final_message()
    return [buffered.usage, streamed.usage]


def assert_one_hour_priced(gw: Gateway, key: str, cost: int) -> None:
    """Four answers (messages buffered and streamed, chat buffered and streamed): each audited at the
    1-hour rate with the 1-hour part in its details, the rollups the same sum."""
    entries = audited(gw, key)
    assert [e["cost_micro_usd"] for e in entries] == [cost] * 4
    for entry in entries:
        assert entry["details"]["cache_write_tokens"] == 200
        assert entry["details"]["cache_write_1h_tokens"] == 150
    costs = gw.get(key, "/v1/costs").json()
    assert costs["total_cost_micro_usd"] == 4 * cost
    assert (costs["cached_tokens"], costs["cache_write_tokens"], costs["cache_write_1h_tokens"]) == (
        4 * 1000,
        4 * 200,
        4 * 150,
    )
    admin = gw.admin("GET", "/costs?tenant=acme&by=model").json()  # the operator's view: the same totals
    assert (admin["cache_write_1h_tokens"], admin["groups"][0]["cache_write_tokens"]) == (4 * 150, 4 * 200)


def test_anthropic_one_hour_cache_writes_at_their_rate(gw: Gateway) -> None:
    gw.claude.script = Script(texts=["Hi", " there"], usage_override=ANTHROPIC_1H_USAGE)  # type: ignore[attr-defined]
    key = gw.new_key("acme")
    buffered, streamed = messages_usages(gw, key, "claude/claude-sonnet-4-5")
    assert buffered.cache_creation_input_tokens == streamed.cache_creation_input_tokens == 200
    # the split by TTL, as Anthropic sends it (the SDK's stream accumulator keeps only message_start's)
    assert buffered.cache_creation is not None
    assert (
        buffered.cache_creation.ephemeral_5m_input_tokens,
        buffered.cache_creation.ephemeral_1h_input_tokens,
    ) == (
        50,
        150,
    )
    for usage in chat_costs(gw, key, "claude/claude-sonnet-4-5"):
        assert usage is not None and usage.prompt_tokens == 1600
    assert_one_hour_priced(gw, key, ANTHROPIC_1H_COST)


def test_bedrock_one_hour_cache_writes_at_their_rate(gw: Gateway) -> None:
    gw.bedrock.script(texts=["Hi", " there"], usage=(400, 50), cache=(1000, 200), cache_1h=150)  # type: ignore[attr-defined]
    key = gw.new_key("acme")
    buffered, _ = messages_usages(gw, key, f"bedrock/{PROFILE}")
    assert buffered.cache_creation is not None and buffered.cache_creation.ephemeral_1h_input_tokens == 150
    chat_costs(gw, key, f"bedrock/{PROFILE}")
    assert [r.operation for r in gw.bedrock.requests] == ["converse", "converse-stream"] * 2  # type: ignore[attr-defined]
    assert_one_hour_priced(gw, key, BEDROCK_1H_COST)
