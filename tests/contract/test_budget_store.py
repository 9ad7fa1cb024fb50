"""The USD budget part of the store contract (``budget_records.UsdBudgetStore``) on every backend
(``store``: SQLite, moto, dynalite), and its one invariant under concurrency (``concurrent_store``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from tollgate.store.base import Overdrawn, Store
from tollgate.store.budget_records import (
    EXPIRY_MARGIN,
    BudgetRule,
    UsdCounter,
    UsdReservation,
    counter_expiry,
    period_end_bound,
    sweep_floor,
)
from tollgate.store.dynamodb import DynamoDBStore
from tollgate.store.dynamodb_budgets import counter_key
from tollgate.store.table import ttl_attribute

from .test_store_contract import at

LIMIT = 1_000_000  # $1 in micro-USD
KEY_RULE = BudgetRule("acme", "key", "key_1", LIMIT, "daily", "Europe/Berlin", (50, 80, 100))
OLD, PREV_AT = "2026-01-10T10:00:00.000000Z", "2026-11-25T23:50:00.000000Z"
CUR_AT = "2026-11-26T09:00:00.000000Z"
POOL_RULE = BudgetRule("acme", "pool", "team", None, "none", "UTC", (90,))


async def test_rules_are_created_replaced_listed_and_kept_per_tenant(store: Store) -> None:
    await store.put_budget_rule(KEY_RULE)
    await store.put_budget_rule(POOL_RULE)
    await store.put_budget_rule(BudgetRule("other", "pool", "team", 5, "monthly", "UTC"))
    assert await store.list_budget_rules("acme") == [KEY_RULE, POOL_RULE]
    assert len(await store.list_budget_rules()) == 3
    changed = BudgetRule("acme", "key", "key_1", 2 * LIMIT, "weekly", "UTC", ())
    await store.put_budget_rule(changed)
    found = await store.get_budget_rules("acme", ["key:key_1", "pool:team", "pool:missing"])
    assert sorted(found, key=lambda r: r.scope) == [changed, POOL_RULE]
    assert await store.get_budget_rules("acme", []) == []
    assert await store.get_budget_rules("nobody", ["key:key_1"]) == []


async def test_reserve_creates_the_period_counter_and_refuses_past_the_limit(store: Store) -> None:
    assert await store.get_usd_counter("acme", "key:k", "2026-11-26") is None
    first = await store.reserve_usd("acme", "key:k", "2026-11-26", ("r1", 600_000, at(1)), LIMIT)
    assert (first.used, first.reserved, first.reservations) == (0, 600_000, {"r1": (600_000, at(1))})
    again = await store.reserve_usd("acme", "key:k", "2026-11-26", ("r1", 600_000, at(2)), LIMIT)
    assert again == first  # a retried reserve holds once
    with pytest.raises(Overdrawn) as refused:
        await store.reserve_usd("acme", "key:k", "2026-11-26", ("r2", 400_001, at(3)), LIMIT)
    assert refused.value.available == 400_000
    with pytest.raises(Overdrawn) as too_big:
        await store.reserve_usd("acme", "key:k", "2026-11-27", ("r3", LIMIT + 1, at(3)), LIMIT)
    assert too_big.value.available == LIMIT
    fits = await store.reserve_usd("acme", "key:k", "2026-11-26", ("r2", 400_000, at(3)), LIMIT)
    assert fits.reserved == LIMIT
    other_period = await store.reserve_usd("acme", "key:k", "2026-11-27", ("r4", LIMIT, at(4)), LIMIT)
    assert other_period.reserved == LIMIT  # a new period starts clean
    other_tenant = await store.reserve_usd("beta", "key:k", "2026-11-26", ("r1", LIMIT, at(4)), LIMIT)
    assert other_tenant.reserved == LIMIT


async def test_settle_charges_once_and_frees_the_rest(store: Store) -> None:
    await store.reserve_usd("acme", "pool:p", "all", ("r1", 500_000, at(1)), LIMIT)
    settled = await store.settle_usd("acme", "pool:p", "all", "r1", 120_000)
    assert settled == UsdCounter("acme", "pool:p", "all", used=120_000, reserved=0)
    assert await store.settle_usd("acme", "pool:p", "all", "r1", 120_000) is None
    assert await store.settle_usd("acme", "pool:p", "all", "unknown", 1) is None
    after = await store.reserve_usd("acme", "pool:p", "all", ("r2", 880_000, at(2)), LIMIT)
    assert after.used + after.reserved == LIMIT


async def test_settle_with_the_held_amount_finds_every_state_as_without_it(store: Store) -> None:
    """``reserved=`` (the amount the caller holds: settled with no read first on DynamoDB) settles the same:
    the held amount once; a wrong amount still settles what is held; after the sweep, a correction."""
    await store.reserve_usd("acme", "pool:p", "all", ("r1", 500_000, at(1)), LIMIT)
    settled = await store.settle_usd("acme", "pool:p", "all", "r1", 120_000, reserved=500_000)
    assert settled == UsdCounter("acme", "pool:p", "all", used=120_000, reserved=0)
    assert await store.settle_usd("acme", "pool:p", "all", "r1", 120_000, reserved=500_000) is None
    await store.reserve_usd("acme", "pool:p", "all", ("r2", 300_000, at(2)), LIMIT)
    wrong = await store.settle_usd("acme", "pool:p", "all", "r2", 100_000, reserved=999)
    assert wrong == UsdCounter("acme", "pool:p", "all", used=220_000, reserved=0)
    await store.reserve_usd("acme", "key:k", "2026-11", ("old", 300_000, at(1)), LIMIT)
    await store.put_budget_rule(BudgetRule("acme", "key", "k", LIMIT, "monthly"))  # the sweep finds tenants
    assert len(await store.sweep_usd_reservations(at(50), at(60))) == 1
    late = await store.settle_usd("acme", "key:k", "2026-11", "old", 50_000, reserved=300_000)
    assert late is not None and (late.used, late.reserved, late.swept) == (50_000, 0, {})
    assert await store.get_usd_counter("acme", "nobody", "all") is None
    assert await store.settle_usd("acme", "nobody", "all", "r9", 1, reserved=1) is None


async def test_sweep_charges_abandoned_usd_and_a_late_settle_corrects_it(store: Store) -> None:
    await store.reserve_usd("acme", "key:k", "2026-11", ("old", 300_000, at(1)), LIMIT)
    await store.reserve_usd("acme", "key:k", "2026-11", ("young", 200_000, at(100)), LIMIT)
    await store.put_budget_rule(BudgetRule("acme", "key", "k", LIMIT, "monthly"))  # the sweep finds tenants
    swept = await store.sweep_usd_reservations(at(50), at(60))
    assert swept == [UsdReservation("acme", "key:k", "2026-11", "old", 300_000, at(1))]
    counter = await store.get_usd_counter("acme", "key:k", "2026-11")
    assert counter is not None
    assert (counter.used, counter.reserved) == (300_000, 200_000)
    assert counter.swept == {"old": (300_000, at(60))} and set(counter.reservations) == {"young"}
    assert await store.sweep_usd_reservations(at(50), at(70)) == []  # charged once
    corrected = await store.settle_usd("acme", "key:k", "2026-11", "old", 50_000)
    assert corrected is not None and (corrected.used, corrected.swept) == (50_000, {})
    assert await store.settle_usd("acme", "key:k", "2026-11", "old", 50_000) is None
    # a marker older than the next cutoff is dropped: nothing will settle it any more
    await store.sweep_usd_reservations(at(150), at(160))
    await store.sweep_usd_reservations(at(161), at(170))
    final = await store.get_usd_counter("acme", "key:k", "2026-11")
    assert final is not None and final.swept == {} and final.reservations == {}
    assert (final.used, final.reserved) == (250_000, 0)


async def test_concurrent_usd_reservations_never_pass_the_limit(concurrent_store: Store) -> None:
    store, each = concurrent_store, 150_000  # 6 fit in $1

    async def attempt(rid: str) -> bool:
        try:
            counter = await store.reserve_usd("acme", "key:k", "2026-11-26", (rid, each, at(1)), LIMIT)
        except Overdrawn as exc:
            left = exc.available
        else:
            assert counter.used + counter.reserved <= LIMIT
            return True
        assert 0 <= left < each
        return False

    ids = [f"r{i}" for i in range(40)]
    admitted = await asyncio.wait_for(asyncio.gather(*(attempt(i) for i in ids)), 120)
    assert sum(admitted) == LIMIT // each
    counter = await store.get_usd_counter("acme", "key:k", "2026-11-26")
    assert counter is not None and counter.reserved == sum(admitted) * each


async def test_old_counters_expire_and_the_sweep_reads_only_live_ones(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long-past period's counter carries its expiry (DynamoDB TTL) and the sweep never reads it (SQLite:
    the sweep deletes it); holds in the current and the previous period are still swept, a late settle still
    corrects, and an ``all`` counter never expires."""
    await store.put_budget_rule(BudgetRule("acme", "key", "k", LIMIT, "daily"))
    await store.reserve_usd("acme", "key:k", "2026-01-10", ("ancient", 1_000, OLD), LIMIT)
    await store.settle_usd("acme", "key:k", "2026-01-10", "ancient", 900)
    await store.reserve_usd("acme", "key:k", "all", ("forever", 1_000, OLD), LIMIT)
    await store.settle_usd("acme", "key:k", "all", "forever", 700)
    await store.reserve_usd("acme", "key:k", "2026-11-25", ("prev", 2_000, PREV_AT), LIMIT)
    await store.reserve_usd("acme", "key:k", "2026-11-26", ("cur", 3_000, CUR_AT), LIMIT)
    read: list[str] = []
    if isinstance(store, DynamoDBStore):
        ancient = await store._get(counter_key("acme", "key:k", "2026-01-10"))
        forever = await store._get(counter_key("acme", "key:k", "all"))
        assert ancient is not None and forever is not None
        expiry = datetime(2026, 1, 12, tzinfo=UTC) + EXPIRY_MARGIN  # the latest end in any timezone + 7 days
        assert ancient[ttl_attribute()] == {"N": str(int(expiry.timestamp()))}
        assert ttl_attribute() not in forever
        query = store._query

        async def recording(request: dict[str, Any], *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            items = await query(request, *args, **kwargs)
            read.extend(item["SK"]["S"] for item in items if item["SK"]["S"].startswith("USD#"))
            return items

        monkeypatch.setattr(store, "_query", recording)
    swept = await store.sweep_usd_reservations("2026-11-26T11:30:00.000000Z", "2026-11-26T12:00:00.000000Z")
    held = {(r.period_key, r.reservation_id) for r in swept}
    assert held == {("2026-11-25", "prev"), ("2026-11-26", "cur")}
    if isinstance(store, DynamoDBStore):
        assert sorted(read) == ["USD#key:k#2026-11-25", "USD#key:k#2026-11-26", "USD#key:k#all"]
    else:
        assert await store.get_usd_counter("acme", "key:k", "2026-01-10") is None  # deleted by the sweep
    corrected = await store.settle_usd("acme", "key:k", "2026-11-25", "prev", 500)  # a late settle
    assert corrected is not None and (corrected.used, corrected.reserved, corrected.swept) == (500, 0, {})
    kept = await store.get_usd_counter("acme", "key:k", "all")
    assert kept is not None and kept.used == 700


def test_the_sweep_floor_keeps_every_unexpired_key_of_every_period() -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    floor = sweep_floor(now, EXPIRY_MARGIN)
    assert floor == "2026-10-17"  # 7 days' margin + the longest period (31 days) + 2 days of timezones
    live = ["2026-10-17", "2026-11", "2026-W01", "2026-W43", "2027-01", "all"]  # unexpired or not provably so
    expired = ["2026-10-16", "2026-10", "2025-W52", "2025-12-31"]
    assert all(key >= floor for key in live) and all(key < floor for key in expired)
    for key in expired:
        end = period_end_bound(key)
        assert end is not None and end + EXPIRY_MARGIN < now
    assert counter_expiry("all") is None and period_end_bound("2026-W48") == datetime(2026, 12, 1, tzinfo=UTC)
