"""A long-context price tier: above its input threshold a request is billed at the tier's rates for all its
tokens (Anthropic's Sonnet 4 and 4.5 above 200K input tokens: $6 / $22.50 instead of $3 / $15), and the USD
hold of a request that can pass the threshold is sized at those rates. A per-search fee: Anthropic's web
search server tool at $10 per 1,000 searches, charged as reported and held for every search allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_usage_pricing import pricing_from
from tollgate.accounting import Pricing
from tollgate.budgets import Budgets
from tollgate.providers import openai_responses
from tollgate.providers.anthropic_response import usage_of
from tollgate.providers.base import Usage
from tollgate.store.sqlite import SQLiteStore
from tollgate.tool_fees import ToolUses

SONNETS = [
    ("claude", "claude-sonnet-4-5"),
    ("claude", "claude-sonnet-4-20250514"),
    ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
    ("openrouter", "anthropic/claude-sonnet-4"),
]


@pytest.mark.parametrize(("provider", "model"), SONNETS)
def test_the_whole_request_takes_the_long_context_rates_above_200k_input(provider: str, model: str) -> None:
    pricing = Pricing.load(None)
    assert pricing.cost(provider, model, Usage(200_000, 2_000)) == 200_000 * 3 + 2_000 * 15
    assert pricing.cost(provider, model, Usage(200_001, 2_000)) == 200_001 * 6 + 2_000 * 45 // 2
    assert pricing.cost(provider, model, Usage(250_000, 2_000)) == 1_545_000  # $1.50 + $0.045


def test_cache_reads_and_writes_count_toward_the_threshold_and_take_the_tiers_rates() -> None:
    pricing = Pricing.load(None)
    usage = Usage(210_000, 1_000, cached_tokens=150_000, cache_write_tokens=50_000)
    # 10,000 input x 6 + 150,000 reads x 0.60 + 50,000 5-minute writes x 7.50 + 1,000 output x 22.50
    assert pricing.cost("claude", "claude-sonnet-4-5", usage) == 60_000 + 90_000 + 375_000 + 22_500
    short = Usage(190_000, 1_000, cached_tokens=150_000)
    assert pricing.cost("claude", "claude-sonnet-4-5", short) == 40_000 * 3 + 150_000 * 3 // 10 + 15_000


def test_the_usd_hold_uses_the_tier_only_when_the_request_can_pass_its_threshold(tmp_path: Path) -> None:
    budgets = Budgets(SQLiteStore(str(tmp_path / "unused.db")), Pricing.load(None))
    assert budgets.cost_bound([("claude", "claude-sonnet-4-5", 100_000)]) == (100_000 * 15, None)
    assert budgets.cost_bound([("claude", "claude-sonnet-4-5", 200_000)]) == (200_000 * 15, None)
    assert budgets.cost_bound([("claude", "claude-sonnet-4-5", 300_000)]) == (300_000 * 45 // 2, None)
    # a model without a tier keeps its bound whatever the size
    assert budgets.cost_bound([("claude", "claude-3-5-haiku", 300_000)]) == (300_000 * 4, None)


def test_a_pricing_file_can_give_a_model_a_tier(tmp_path: Path) -> None:
    pricing = pricing_from(
        tmp_path, {"m": {"input": "1", "output": "2", "long_context": {"above": 10, "rates": ["3", "4"]}}}
    )
    assert pricing.cost("openai", "m", Usage(10, 1)) == 12
    assert pricing.cost("openai", "m", Usage(11, 1)) == 37


@pytest.mark.parametrize(
    ("tier", "message"),
    [
        ({"above": -1, "rates": ["1", "2"]}, "long_context.above must be a whole number"),
        ({"above": True, "rates": ["1", "2"]}, "long_context.above must be a whole number"),
        ({"above": 1.5, "rates": ["1", "2"]}, "long_context.above must be a whole number"),
        ({"above": 10}, 'long_context must be {"above"'),
        (["1", "2"], 'long_context must be {"above"'),
        ({"above": 10, "rates": ["1"]}, "long_context.rates must be [input, output"),
        ({"above": 10, "rates": ["1", "-2"]}, "long_context.rates.output must be a number"),
        (  # one tier only: the tier's rates cannot hold another
            {"above": 10, "rates": {"input": "1", "output": "2", "long_context": {"above": 20, "rates": []}}},
            "long_context.rates must be [input, output",
        ),
    ],
)
def test_bad_tiers_are_named(tmp_path: Path, tier: Any, message: str) -> None:
    with pytest.raises(ValueError, match=r"pricing: openai\.m\.long_context") as caught:
        pricing_from(tmp_path, {"m": {"input": "1", "output": "2", "long_context": tier}})
    assert message in str(caught.value)


def test_web_searches_are_read_from_anthropics_usage_and_charged_per_search(tmp_path: Path) -> None:
    usage = usage_of({"input_tokens": 10, "output_tokens": 5, "server_tool_use": {"web_search_requests": 4}})
    assert usage.web_search_requests == 4
    assert usage_of({"input_tokens": 10, "server_tool_use": None}).web_search_requests == 0
    packaged = Pricing.load(None)
    assert packaged.cost("claude", "claude-opus-4-5", usage) == 10 * 5 + 5 * 25 + 4 * 10_000
    assert packaged.cost("bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0", usage) == 10 * 3 + 5 * 15
    # above the long-context threshold the tokens take the tier's rates; the searches cost the same
    long = Usage(200_001, 0, web_search_requests=1)
    assert packaged.cost("claude", "claude-sonnet-4-5", long) == 200_001 * 6 + 10_000
    pricing = pricing_from(tmp_path, {"m": {"input": "1", "output": "2", "web_search": "25"}})
    assert pricing.cost("openai", "m", Usage(0, 0, web_search_requests=2)) == 2 * 25_000
    budgets = Budgets(SQLiteStore(str(tmp_path / "unused.db")), pricing)
    searches = ToolUses(3, frozenset({"web_search"}))
    assert budgets.cost_bound([("openai", "m", 100)], {"openai": searches}) == (100 * 2 + 3 * 25_000, None)
    # searches count only for the provider that runs them (Anthropic's server tools reach only Anthropic)
    assert budgets.cost_bound([("openai", "m", 100)], {"claude": searches}) == (100 * 2, None)


@pytest.mark.parametrize("fee", ["-1", "free", True])
def test_a_bad_search_fee_is_named(tmp_path: Path, fee: Any) -> None:
    with pytest.raises(ValueError, match=r"pricing: openai\.m\.web_search must be a number"):
        pricing_from(tmp_path, {"m": {"input": "1", "output": "2", "web_search": fee}})


@pytest.mark.parametrize(
    ("output", "searches"),
    [
        ([{"type": "web_search_call"}, {"type": "message", "content": []}, {"type": "web_search_call"}], 2),
        ([{"type": "web_search_call"}, "not an item", 7], 1),
        (5, 0),  # an upstream's odd output is no search, never a failure
        ({"type": "web_search_call"}, 0),
        (None, 0),
    ],
)
def test_hosted_searches_are_the_answers_web_search_call_items(output: Any, searches: int) -> None:
    usage = openai_responses._usage({"usage": {"input_tokens": 3, "output_tokens": 1}, "output": output})
    assert usage is not None and usage.web_search_requests == searches
