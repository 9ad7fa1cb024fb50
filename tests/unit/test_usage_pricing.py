"""Cached, cache-write and reasoning tokens: what counts where, the rates they are priced at, the pricing
file's shapes, and each wire format's usage object."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tollgate.accounting import Price, Pricing, usage_details
from tollgate.ledger import Charge
from tollgate.providers import anthropic_response, bedrock_mapping, openai_compat
from tollgate.providers.base import MAX_TOKEN_COUNT, Usage, token_count
from tollgate.wire import anthropic_messages, openai_chat, responses_output

PARTS = Usage(1000, 300, cached_tokens=600, reasoning_tokens=200, cache_write_tokens=100)
RATES = {"input": "1", "output": "2", "cache_read": "0.5", "cache_write": "3", "reasoning": "4"}


def pricing_from(tmp_path: Path, models: dict[str, Any]) -> Pricing:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"openai": models}))
    return Pricing.load(str(path))


def test_each_part_at_its_own_rate_and_nothing_twice(tmp_path: Path) -> None:
    pricing = pricing_from(tmp_path, {"m": RATES})
    # 300 uncached prompt, 600 read, 100 written, 100 plain output, 200 reasoning
    assert pricing.cost("openai", "m", PARTS) == 300 * 1 + 300 + 100 * 3 + 100 * 2 + 200 * 4
    assert pricing.cost("openai", "m", Usage(1000, 300)) == 1000 + 600  # no parts: input and output only
    everything_cached = Usage(1000, 0, cached_tokens=1000)
    assert pricing.cost("openai", "m", everything_cached) == 500


def test_parts_are_capped_at_the_totals(tmp_path: Path) -> None:
    """An upstream that reports more cached tokens than prompt tokens is not charged for tokens it did
    not count."""
    pricing = pricing_from(tmp_path, {"m": RATES})
    odd = Usage(100, 10, cached_tokens=150, reasoning_tokens=50, cache_write_tokens=20)
    assert pricing.cost("openai", "m", odd) == 100 * 0.5 + 10 * 4


def test_defaults_cache_rates_are_input_reasoning_is_output(tmp_path: Path) -> None:
    pricing = pricing_from(
        tmp_path, {"plain": ["1", "2"], "read": ["1", "2", "0.25"], "nulls": [1, 2, None, None, 8]}
    )
    assert pricing.price("openai", "plain") == Price(*(Decimal(n) for n in ("1", "2", "1", "1", "2", "1")))
    assert pricing.cost("openai", "plain", PARTS) == 1000 + 600  # the same as without parts
    assert pricing.cost("openai", "read", PARTS) == 300 + 600 * 0.25 + 100 + 600
    assert pricing.cost("openai", "nulls", PARTS) == 1000 + 100 * 2 + 200 * 8


def test_one_hour_cache_writes_at_their_own_rate(tmp_path: Path) -> None:
    """Of 100 writes, 40 with a 1-hour TTL: those at ``cache_write_1h``, the rest at ``cache_write``; left
    out, the 1-hour rate is twice the input rate where cache writes are priced (Anthropic's), else input."""
    one_hour = Usage(1000, 300, cached_tokens=600, cache_write_tokens=100, cache_write_1h_tokens=40)
    pricing = pricing_from(
        tmp_path,
        {
            "m": {**RATES, "cache_write_1h": "7"},
            "dflt": RATES,
            "plain": ["1", "2"],
            "ordered": [1, 2, 0.5, 3, 4, 9],
        },
    )
    base = 300 * 1 + 600 * 0.5 + 100 * 2 + 200 * 2  # the uncached input, reads and output
    assert pricing.cost("openai", "m", one_hour) == base + 60 * 3 + 40 * 7
    assert pricing.cost("openai", "ordered", one_hour) == base + 60 * 3 + 40 * 9
    assert pricing.cost("openai", "dflt", one_hour) == base + 60 * 3 + 40 * 3  # max(3, 2 x 1)
    assert pricing.price("openai", "plain") is not None
    assert pricing.cost("openai", "plain", one_hour) == 1000 + 600  # an unpriced cache: every token input
    # capped: more 1-hour writes than writes are charged as writes only
    assert (
        pricing.cost("openai", "m", Usage(100, 0, cache_write_tokens=10, cache_write_1h_tokens=50)) == 90 + 70
    )
    # the packaged Claude entries: 1-hour writes at 2x input on Anthropic and Bedrock alike
    packaged = Pricing.load()
    sonnet = packaged.price("claude", "claude-sonnet-4-5")
    assert sonnet is not None and (sonnet.cache_write, sonnet.cache_write_1h) == (
        Decimal("3.75"),
        Decimal("6.00"),
    )
    # the same rates on Bedrock, which runs no web search server tool (no per-search fee)
    bedrock = packaged.price("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert bedrock == replace(sonnet, web_search=None)
    models = ("claude-3-5-haiku", "claude-opus-4-1", "anthropic.claude-haiku-4-5-20251001-v1:0")
    claude_like = [
        price
        for provider in ("claude", "bedrock", "openrouter")
        for model in (*models, "anthropic/claude-sonnet-4")
        if (price := packaged.price(provider, model)) is not None
    ]
    assert len(claude_like) == 4
    assert all(
        p.cache_write_1h == p.input * 2 and p.cache_write == p.input * Decimal("1.25") for p in claude_like
    )


def test_rounded_once_half_up(tmp_path: Path) -> None:
    pricing = pricing_from(tmp_path, {"m": {"input": "0.5", "output": "0.5", "cache_read": "0.25"}})
    # 1 x 0.5 + 1 x 0.25 + 1 x 0.5 = 1.25 -> 1; each part rounded alone would give 1 + 0 + 1 = 2
    assert pricing.cost("openai", "m", Usage(2, 1, cached_tokens=1)) == 1
    assert pricing.cost("openai", "m", Usage(1, 0)) == 1  # 0.5 rounds half up


def test_packaged_table_has_cache_rates() -> None:
    pricing = Pricing.load()
    sonnet = pricing.price("claude", "claude-sonnet-4-5-20250929")
    assert sonnet is not None and (sonnet.cache_read, sonnet.cache_write) == (
        Decimal("0.30"),
        Decimal("3.75"),
    )
    bedrock = pricing.price("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert bedrock == replace(sonnet, web_search=None)  # Bedrock runs no web search server tool
    mini = pricing.price("openai", "gpt-4o-mini")
    assert mini is not None and (mini.cache_read, mini.cache_write, mini.reasoning) == (
        Decimal("0.075"),
        Decimal("0.15"),  # OpenAI charges nothing extra for writing its cache
        Decimal("0.60"),
    )
    assert pricing.cost("llama_cpp", "any", PARTS) == 0


@pytest.mark.parametrize(
    ("price", "message"),
    [
        (["1"], "must be [input, output"),
        (["1", "2", "3", "4", "5", "6", "7"], "must be [input, output"),
        (["1", "2", None, None, None, "-1"], "m.cache_write_1h must be a number"),
        ({"input": "1", "output": "2", "cache": "1"}, "with keys input, output"),
        ({"input": "1"}, "needs both an input and an output rate"),
        ([None, "2"], "needs both an input and an output rate"),
        (["1", "-2"], "m.output must be a number"),
        (["1", "2", "cheap"], "m.cache_read must be a number"),
        (["1", "2", "NaN"], "m.cache_read must be a number"),
        (["1", "2", None, None, True], "m.reasoning must be a number"),
        ("1", "must be [input, output"),
    ],
)
def test_bad_prices_are_named(tmp_path: Path, price: Any, message: str) -> None:
    with pytest.raises(ValueError, match=r"pricing: openai\.m") as caught:
        pricing_from(tmp_path, {"m": price})
    assert message in str(caught.value)


def test_usage_sums_and_uncached() -> None:
    total = PARTS + Usage(10, 5, estimated=True, cached_tokens=4)
    assert total == Usage(1010, 305, True, 604, 200, 100)
    assert (
        Usage(1, 0, cache_write_1h_tokens=2) + Usage(1, 0, cache_write_1h_tokens=3)
    ).cache_write_1h_tokens == 5
    assert PARTS.uncached_prompt_tokens == 300 and Usage(5, 0, cached_tokens=9).uncached_prompt_tokens == 0


def test_usage_details_for_the_audit_entry() -> None:
    assert usage_details(Usage(5, 5)) == {}  # entries without parts hash exactly as before
    assert usage_details(PARTS) == {"cached_tokens": 600, "cache_write_tokens": 100, "reasoning_tokens": 200}
    assert usage_details(Usage(9, 1, cache_write_tokens=5, cache_write_1h_tokens=3)) == {
        "cache_write_tokens": 5,
        "cache_write_1h_tokens": 3,
    }
    charge = Charge("t", "k", "p", "r", "openai", "m", Usage(1, 1, reasoning_tokens=1), attempts=2)
    assert charge.details() == {"attempts": 2, "reasoning_tokens": 1}
    assert Charge("t", "k", "p", "r", "openai", "m", Usage(1, 1)).details() is None


def test_each_wire_format_shows_the_parts_its_own_way() -> None:
    assert openai_chat.usage_body(PARTS) == {
        "prompt_tokens": 1000,
        "completion_tokens": 300,
        "total_tokens": 1300,
        "prompt_tokens_details": {"cached_tokens": 600, "cache_write_tokens": 100},
        "completion_tokens_details": {"reasoning_tokens": 200},
    }
    assert anthropic_messages.usage_body(PARTS) == {  # input_tokens leaves the cache out
        "input_tokens": 300,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 600,
        "output_tokens": 300,
    }
    assert responses_output.usage_body(PARTS) == {
        "input_tokens": 1000,
        "input_tokens_details": {"cached_tokens": 600, "cache_write_tokens": 100},
        "output_tokens": 300,
        "output_tokens_details": {"reasoning_tokens": 200},
        "total_tokens": 1300,
    }
    assert "cache_write_tokens" not in openai_chat.usage_body(Usage(1, 1))["prompt_tokens_details"]


def test_odd_upstream_counts_are_zero_never_a_failure() -> None:
    assert [token_count(v) for v in (7, 7.0, None, "7", -3, 2.5, True, float("nan"), [1])] == [7, 7] + [0] * 7
    odd = {"prompt_tokens": "x", "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": -4}}
    choice = {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    assert openai_compat.parse_response({"choices": [choice], "usage": odd})[-1] == Usage(0, 5)
    assert bedrock_mapping.usage({"inputTokens": 3, "cacheReadInputTokens": "lots"}) == Usage(3, 0)
    assert anthropic_response.usage_of(
        {"input_tokens": 2, "cache_read_input_tokens": None, "output_tokens": 1.0}
    ) == Usage(2, 1)


def test_one_hour_writes_from_each_upstream_shape() -> None:
    """Anthropic's ``cache_creation`` and Bedrock's ``cacheDetails`` give the 1-hour part of the writes
    (capped at the writes; odd shapes count 0), and /v1/messages shows the split as Anthropic does."""
    raw = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 30,
        "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20},
        "output_tokens": 2,
    }
    assert anthropic_response.usage_of(raw) == Usage(40, 2, cache_write_tokens=30, cache_write_1h_tokens=20)
    over = {**raw, "cache_creation": {"ephemeral_1h_input_tokens": 99}}
    assert anthropic_response.usage_of(over).cache_write_1h_tokens == 30
    assert anthropic_response.usage_of({**raw, "cache_creation": [20]}).cache_write_1h_tokens == 0
    converse = {
        "inputTokens": 10,
        "outputTokens": 2,
        "cacheWriteInputTokens": 30,
        "cacheDetails": [{"ttl": "1h", "inputTokens": 20}, {"ttl": "5m", "inputTokens": 10}],
    }
    assert bedrock_mapping.usage(converse) == Usage(40, 2, cache_write_tokens=30, cache_write_1h_tokens=20)
    assert bedrock_mapping.usage({**converse, "cacheDetails": "1h"}) == Usage(40, 2, cache_write_tokens=30)
    assert anthropic_messages.usage_body(Usage(40, 2, cache_write_tokens=30, cache_write_1h_tokens=20)) == {
        "input_tokens": 10,
        "cache_creation_input_tokens": 30,
        "cache_read_input_tokens": 0,
        "output_tokens": 2,
        "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20},
    }


def test_huge_upstream_counts_are_clamped_never_an_overflow() -> None:
    """An upstream that reports 1e20, 10**30 or Infinity tokens gets the clamp (10**9 a field): large
    enough to charge what it claims in full (an overdraft), small enough for every store and sum."""
    huge = (1e20, 10**30, float("inf"), 10**9 + 1)
    assert [token_count(v) for v in huge] == [MAX_TOKEN_COUNT] * 4
    assert token_count(MAX_TOKEN_COUNT) == MAX_TOKEN_COUNT == 10**9
    assert token_count(float("-inf")) == 0
    claimed = {
        "prompt_tokens": 5,
        "completion_tokens": 1e20,
        "completion_tokens_details": {"reasoning_tokens": 1e400},
    }
    choice = {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    usage = openai_compat.parse_response({"choices": [choice], "usage": claimed})[-1]
    assert usage == Usage(5, MAX_TOKEN_COUNT, reasoning_tokens=MAX_TOKEN_COUNT)
    assert bedrock_mapping.usage({"inputTokens": float("inf"), "outputTokens": 1}) == Usage(
        MAX_TOKEN_COUNT, 1
    )


def test_a_dated_snapshot_with_its_own_price_is_not_priced_as_its_base_model() -> None:
    pricing = Pricing.load()
    assert pricing.cost_micro_usd("openai", "gpt-4o-2024-05-13", 1000, 1000) == 5_000 + 15_000
    assert pricing.cost_micro_usd("openai", "gpt-4o-2024-08-06", 1000, 1000) == 2_500 + 10_000  # the base's
