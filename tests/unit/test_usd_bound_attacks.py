"""The USD hold's upper bound attacked through routing: a fallback priced higher than the first candidate,
a model priced 0 on one provider (local) and not on another, and a fallback without a price."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tollgate.accounting import Price, Pricing
from tollgate.budgets import Budgets, Unpriced
from tollgate.store.sqlite import SQLiteStore

PRICES = Pricing(
    {
        "openai": {"cheap": Price.of(Decimal("0.10"), Decimal("0.40"))},
        "anthropic": {"dear": Price.of(Decimal("3"), Decimal("15"), cache_write=Decimal("30"))},
        "llama_cpp": {"cheap": Price.of(Decimal(0), Decimal(0))},
    }
)


def _budgets(tmp_path: Path) -> Budgets:
    return Budgets(SQLiteStore(str(tmp_path / "unused.db")), PRICES)  # the bound reads no store


def test_the_bound_is_the_dearest_candidate_at_its_dearest_rate(tmp_path: Path) -> None:
    calls = [("openai", "cheap", 1000), ("anthropic", "dear", 900)]
    # 900 tokens x 30 (its cache-write rate), not 1000 x 0.4
    assert _budgets(tmp_path).cost_bound(calls) == (27_000, None)


def test_a_model_free_on_one_provider_is_held_at_the_others_price(tmp_path: Path) -> None:
    budgets = _budgets(tmp_path)
    assert budgets.cost_bound([("llama_cpp", "cheap", 1000), ("openai", "cheap", 1000)]) == (400, None)
    assert budgets.cost_bound([("llama_cpp", "cheap", 1000)]) == (0, None)  # local only: nothing held


def test_an_unpriced_fallback_is_named_whatever_its_place(tmp_path: Path) -> None:
    calls = [("openai", "cheap", 10), ("llama_cpp", "cheap", 10), ("openai", "gpt-unknown", 10)]
    assert _budgets(tmp_path).cost_bound(calls) == (0, Unpriced("openai", "gpt-unknown"))
