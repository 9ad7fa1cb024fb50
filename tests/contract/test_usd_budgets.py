"""USD budgets through the ledger, on every backend, with an injected clock: a request holds its
upper-bound cost in its key's and its pool's budgets, settles the real cost, is refused (429, naming the
budget) when it does not fit, starts clean in the next period, never blocks a local model and never lets an
unpriced one through; ``Budgets.views`` and ``alert_levels`` report what is used."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest

from tests.audit_helpers import request_entries
from tollgate.accounting import Price, Pricing, summarize_costs
from tollgate.budgets import Budgets, ModelNotPriced
from tollgate.errors import BudgetExceeded
from tollgate.keys import Principal
from tollgate.ledger import Booking, Charge, Ledger
from tollgate.providers.base import Usage
from tollgate.store.audit_base import ABANDONED
from tollgate.store.base import Holder, Store
from tollgate.store.budget_records import BudgetRule
from tollgate.sweeper import Sweeper
from tollgate.timeutil import utc_now

# USD per million tokens = micro-USD per token: a 1,000-token reservation holds 600 micro-USD
PRICES = Pricing({"openai": {"gpt-4o-mini": Price.of(Decimal("0.15"), Decimal("0.60"))}})
KEY = Principal("acme", "key_a", pool="team")
MINI = Holder("key_a", "openai", "gpt-4o-mini")


class Clock:
    def __init__(self, text: str) -> None:
        self.set(text)

    def set(self, text: str) -> None:
        self.now = datetime.fromisoformat(text).replace(tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def _ledger(store: Store, clock: Clock) -> Ledger:
    await store.create_pool("acme", "team")
    return Ledger(store, PRICES, audit_key=None, session_keep=10, session_ttl=60, clock=clock)


async def _run(ledger: Ledger, rid: str, prompt: int, completion: int, holder: Holder = MINI) -> Booking:
    booking = ledger.book(KEY, None, "0" * 64)
    await ledger.reserve(booking, rid, 1000, holder)
    charge = Charge("acme", "key_a", "team", rid, holder.provider, holder.model, Usage(prompt, completion))
    await ledger.finish(booking, charge, "ok", {"role": "assistant", "content": "x"}, save_session=False)
    return booking


async def test_a_daily_key_budget_in_berlin_refuses_then_resets_at_local_midnight(store: Store) -> None:
    clock = Clock("2026-03-29T21:00:00")  # 23:00 in Berlin on the 23-hour DST day
    ledger = await _ledger(store, clock)
    await store.put_budget_rule(BudgetRule("acme", "key", "key_a", 1400, "daily", "Europe/Berlin"))
    await _run(ledger, "r1", 100, 100)  # costs 15 + 60 = 75
    await _run(ledger, "r2", 1000, 0)  # 150
    (view,) = [v for v in await ledger.budgets.views("acme") if v["kind"] == "usd"]
    assert (view["spent"], view["reserved"], view["remaining"]) == (225, 0, 1175)
    assert view["resets_at"] == "2026-03-29T22:00:00.000000Z" and view["period_key"] == "2026-03-29"
    held = ledger.book(KEY, None, "0" * 64)
    await ledger.reserve(held, "r3", 1000, MINI)  # holds 600: 825 committed
    with pytest.raises(BudgetExceeded) as refused:
        await ledger.reserve(ledger.book(KEY, None, "0" * 64), "r4", 1000, MINI)
    error = refused.value
    assert error.code == "budget_exceeded"
    assert error.message == (
        "the daily USD budget of key 'key_a' (Europe/Berlin) is exhausted: this request may cost up to "
        "$0.000600, $0.000575 remains; it resets at 2026-03-29T22:00:00.000000Z"
    )
    assert error.budget == {
        "kind": "usd",
        "scope": "key",
        "name": "key_a",
        "period": "daily",
        "timezone": "Europe/Berlin",
        "limit": 1400,
        "needed": 600,
        "remaining": 575,
        "resets_at": "2026-03-29T22:00:00.000000Z",
        "unit": "micro_usd",
    }
    assert error.retry_after == 3600
    pool = await store.get_pool("acme", "team")
    assert pool is not None and set(pool.reservations) == {"r3"}  # the refused one holds no tokens
    clock.set("2026-03-29T22:00:00")  # midnight in Berlin: a new day, spent starts at 0
    (fresh,) = [v for v in await ledger.budgets.views("acme") if v["kind"] == "usd"]
    assert (fresh["spent"], fresh["reserved"], fresh["period_key"]) == (0, 0, "2026-03-30")
    assert fresh["resets_at"] == "2026-03-30T22:00:00.000000Z"
    await _run(ledger, "r4", 0, 1000)  # 600: fits in the new day
    # r3 settles into the day it reserved in
    charge = Charge("acme", "key_a", "team", "r3", "openai", "gpt-4o-mini", Usage(0, 10))
    await ledger.finish(held, charge, "ok", None, save_session=False)
    old = await store.get_usd_counter("acme", "key:key_a", "2026-03-29")
    new = await store.get_usd_counter("acme", "key:key_a", "2026-03-30")
    assert old is not None and (old.used, old.reserved) == (225 + 6, 0)
    assert new is not None and (new.used, new.reserved) == (600, 0)


async def test_every_budget_must_fit_and_a_refusal_releases_the_others(store: Store) -> None:
    ledger = await _ledger(store, Clock("2026-11-26T10:00:00"))
    await store.put_budget_rule(BudgetRule("acme", "key", "key_a", 10_000, "monthly", alert_at=(50, 100)))
    await store.put_budget_rule(BudgetRule("acme", "pool", "team", 800, "weekly"))
    await _run(ledger, "r1", 0, 500)  # 300 in each
    with pytest.raises(BudgetExceeded) as refused:
        await ledger.reserve(ledger.book(KEY, None, "0" * 64), "r2", 1000, MINI)
    assert "the weekly USD budget of pool 'team'" in refused.value.message
    assert "resets at 2026-11-30T00:00:00.000000Z" in refused.value.message
    key = await store.get_usd_counter("acme", "key:key_a", "2026-11")
    assert key is not None and (key.used, key.reserved) == (300, 0)  # its hold was released
    levels = await ledger.budgets.alert_levels("acme", "key_a", "team")
    assert [(lv.budget_id, lv.period_key, lv.limit, lv.used, lv.alert_at) for lv in levels] == [
        ("key:key_a", "2026-11", 10_000, 300, (50, 100)),
        ("pool:team", "2026-W48", 800, 300, ()),
    ]


async def test_a_token_pool_refusal_names_the_pool_and_releases_the_usd_hold(store: Store) -> None:
    ledger = await _ledger(store, Clock("2026-11-26T10:00:00"))
    await store.set_capacity("acme", "team", 500)
    await store.put_budget_rule(BudgetRule("acme", "key", "key_a", 10_000, "daily"))
    with pytest.raises(BudgetExceeded) as refused:
        await ledger.reserve(ledger.book(KEY, None, "0" * 64), "r1", 1000, MINI)
    assert refused.value.message == (
        "the token budget of pool 'team' is exhausted: this request may need 1000 tokens, 500 remain; "
        "it does not reset (no period)"
    )
    assert refused.value.budget is not None and refused.value.budget["kind"] == "tokens"
    key = await store.get_usd_counter("acme", "key:key_a", "2026-11-26")
    assert key is not None and (key.used, key.reserved, key.reservations) == (0, 0, {})
    levels = await ledger.budgets.alert_levels("acme", "key_a", "team")
    assert ("tokens:team", 500, 0) in [(lv.budget_id, lv.limit, lv.used) for lv in levels]


async def test_local_models_are_never_blocked_and_unpriced_ones_are_refused(store: Store) -> None:
    ledger = await _ledger(store, Clock("2026-11-26T10:00:00"))
    await store.put_budget_rule(BudgetRule("acme", "key", "key_a", 0, "none"))  # nothing may be spent
    await _run(ledger, "local", 500, 500, Holder("key_a", "llama_cpp", "smollm2"))
    assert await store.get_usd_counter("acme", "key:key_a", "all") is None
    with pytest.raises(ModelNotPriced) as unpriced:
        await ledger.reserve(ledger.book(KEY, None, "0" * 64), "r2", 10, Holder("key_a", "openai", "gpt-9"))
    assert "TOLLGATE_PRICING_FILE" in unpriced.value.message and "openai/gpt-9" in unpriced.value.message
    pool = await store.get_pool("acme", "team")
    assert pool is not None and pool.reservations == {}  # refused before anything was held
    # a route whose fallback is unpriced is refused too: every candidate must be priced
    calls = [("openai", "gpt-4o-mini", 10), ("openai", "gpt-9", 10)]
    with pytest.raises(ModelNotPriced):
        await ledger.reserve(ledger.book(KEY, None, "0" * 64), "r3", 10, MINI, calls)
    with pytest.raises(BudgetExceeded):  # a priced model under a $0 budget
        await ledger.reserve(ledger.book(KEY, None, "0" * 64), "r4", 10, MINI)


async def test_the_sweep_charges_an_abandoned_usd_hold_and_a_late_settle_corrects_it(store: Store) -> None:
    clock = Clock(utc_now().replace(tzinfo=None).isoformat())  # the token hold is stamped with real time
    ledger = await _ledger(store, clock)
    await store.put_budget_rule(BudgetRule("acme", "key", "key_a", 10_000, "none"))
    crashed = ledger.book(KEY, None, "0" * 64)
    await ledger.reserve(crashed, "crashed", 1000, MINI)  # holds 600 micro-USD and 1000 tokens
    later = Clock((clock.now + timedelta(hours=1)).replace(tzinfo=None).isoformat())
    report = await Sweeper(store, ledger, 1800, clock=later).sweep()  # older than the maximum age
    assert report["reservations_swept"] == 1 and report["usd_reservations_swept"] == 1
    counter = await store.get_usd_counter("acme", "key:key_a", "all")
    assert counter is not None and (counter.used, counter.reserved) == (600, 0)  # charged its upper bound
    charge = Charge("acme", "key_a", "team", "crashed", "openai", "gpt-4o-mini", Usage(0, 100))
    await ledger.finish(crashed, charge, "ok", None, save_session=False)  # it came back after all
    corrected = await store.get_usd_counter("acme", "key:key_a", "all")
    assert corrected is not None and (corrected.used, corrected.swept) == (60, {})


async def test_an_abandoned_request_is_audited_at_what_its_usd_budget_was_charged(store: Store) -> None:
    """The sweep charges a budget the hold (the dearest candidate, rounded up); the ``abandoned`` audit entry
    and the cost rollups carry the same amount, not a price of the first candidate rounded to nearest."""
    dear = Pricing(
        {"openai": {"gpt-4o-mini": Price.of(Decimal("0.15"), Decimal("0.60")), "gpt-4o": Price.of(2, 10)}}
    )
    clock = Clock(utc_now().replace(tzinfo=None).isoformat())
    await store.create_pool("acme", "team")
    ledger = Ledger(store, dear, audit_key=None, session_keep=10, session_ttl=60, clock=clock)
    await store.put_budget_rule(BudgetRule("acme", "key", "key_a", 100_000, "none"))
    routed = [("openai", "gpt-4o-mini", 1000), ("openai", "gpt-4o", 1000)]  # a fallback to a dearer model
    await ledger.reserve(ledger.book(KEY, None, "0" * 64), "routed", 1000, MINI, routed)
    await ledger.reserve(ledger.book(KEY, None, "0" * 64), "single", 1002, MINI)  # 601.2: held as 602
    later = Clock((clock.now + timedelta(hours=1)).replace(tzinfo=None).isoformat())
    assert (await Sweeper(store, ledger, 1800, clock=later).sweep())["abandoned_audited"] == 2
    counter = await store.get_usd_counter("acme", "key:key_a", "all")
    assert counter is not None and (counter.used, counter.reserved) == (10_000 + 602, 0)
    entries = {e.request_id: e for e in await request_entries(store, "acme")}
    assert {rid: (e.status, e.model, e.cost_micro_usd) for rid, e in entries.items()} == {
        "routed": (ABANDONED, "gpt-4o-mini", 10_000),
        "single": (ABANDONED, "gpt-4o-mini", 602),
    }
    summary = summarize_costs(await store.list_costs("acme"), None)
    assert summary["total_cost_micro_usd"] == counter.used


async def test_a_process_reuses_the_rules_it_read_until_told_to_forget(store: Store) -> None:
    budgets = Budgets(store, PRICES, cache_seconds=3600)
    await store.put_budget_rule(BudgetRule("acme", "key", "key_a", 100, "daily"))
    (first,) = await budgets.rules("acme", "key_a", "team")
    await store.put_budget_rule(BudgetRule("acme", "key", "key_a", 999, "daily"))
    assert await budgets.rules("acme", "key_a", "team") == [first]  # cached: no read per request
    budgets.forget("other")
    assert await budgets.rules("acme", "key_a", "team") == [first]
    budgets.forget("acme")
    (changed,) = await budgets.rules("acme", "key_a", "team")
    assert changed.usd_limit == 999
    uncached = Budgets(store, PRICES)  # cache_seconds 0: every request reads the rules
    await store.put_budget_rule(BudgetRule("acme", "pool", "team", 5, "none"))
    assert [r.budget_id for r in await uncached.rules("acme", "key_a", "team")] == ["key:key_a", "pool:team"]


class _FailsAfterWriting:
    """The store, except that the ``nth`` call of ``method`` writes its hold and then fails (a lost answer,
    a cancel)."""

    def __init__(self, store: Store, error: BaseException, method: str = "reserve", nth: int = 1) -> None:
        self._store, self._error, self._method, self._left = store, error, method, nth

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._store, name)
        if name != self._method:
            return real

        async def writes_then_fails(*args: Any, **kwargs: Any) -> Any:
            answer = await real(*args, **kwargs)
            self._left -= 1
            if self._left == 0:
                raise self._error
            return answer

        return writes_then_fails


@pytest.mark.parametrize("error", [ConnectionError("connection reset"), asyncio.CancelledError()])
async def test_a_reserve_that_fails_after_writing_its_hold_leaves_nothing_held(
    store: Store, error: BaseException
) -> None:
    ledger = await _ledger(cast(Store, _FailsAfterWriting(store, error)), Clock("2026-11-26T10:00:00"))
    await store.set_capacity("acme", "team", 5_000)
    await store.put_budget_rule(BudgetRule("acme", "key", "key_a", 10_000, "daily"))
    with pytest.raises(type(error)):
        await ledger.reserve(ledger.book(KEY, None, "0" * 64), "r1", 1000, MINI)
    pool = await store.get_pool("acme", "team")
    assert pool is not None and (pool.used, pool.reserved, pool.reservations) == (0, 0, {})
    key = await store.get_usd_counter("acme", "key:key_a", "2026-11-26")
    assert key is not None and (key.used, key.reserved, key.reservations) == (0, 0, {})
    assert await store.sweep_reservations("9999-01-01T00:00:00.000000Z", "9999-01-01T00:00:00.000000Z") == []


@pytest.mark.parametrize("error", [ConnectionError("connection reset"), asyncio.CancelledError()])
async def test_a_usd_hold_that_fails_after_writing_leaves_no_budget_held(
    store: Store, error: BaseException
) -> None:
    """Two budgets apply; the second one's hold is written and then its answer is lost (or the request is
    cancelled): both holds are given back, as for a refusal."""
    failing = cast(Store, _FailsAfterWriting(store, error, method="reserve_usd", nth=2))
    ledger = await _ledger(failing, Clock("2026-11-26T10:00:00"))
    await store.put_budget_rule(BudgetRule("acme", "key", "key_a", 10_000, "daily"))
    await store.put_budget_rule(BudgetRule("acme", "pool", "team", 10_000, "daily"))
    with pytest.raises(type(error)):
        await ledger.reserve(ledger.book(KEY, None, "0" * 64), "r1", 1000, MINI)
    for budget in ("key:key_a", "pool:team"):
        counter = await store.get_usd_counter("acme", budget, "2026-11-26")
        assert counter is not None and (counter.used, counter.reserved, counter.reservations) == (0, 0, {})
    pool = await store.get_pool("acme", "team")
    assert pool is not None and (pool.reserved, pool.reservations) == (0, {})  # the token pool came after
