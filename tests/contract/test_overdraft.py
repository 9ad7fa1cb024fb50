"""Usage above the reservation (``tollgate.overdraft``) on every backend (SQLite, moto, dynalite): the
request is charged what it used, the budget records the overdraft (``overdrawn`` in its view), the next
request is refused, a warning is logged and the thresholds the excess crossed fire at the settle."""

from __future__ import annotations

import json
import logging

import pytest

from tests.contract.test_usd_alerts import watch
from tests.contract.test_usd_budgets import KEY, MINI, Clock, _ledger
from tollgate.errors import BudgetExceeded
from tollgate.ledger import Charge, Ledger
from tollgate.providers.base import Usage
from tollgate.store.base import Store
from tollgate.store.budget_records import BudgetRule


async def _over(ledger: Ledger, rid: str, reserve: int, completion: int) -> None:
    """Reserve ``reserve`` tokens, then report ``completion`` output tokens (more than reserved)."""
    booking = ledger.book(KEY, None, "0" * 64)
    await ledger.reserve(booking, rid, reserve, MINI)
    charge = Charge("acme", "key_a", "team", rid, MINI.provider, MINI.model, Usage(0, completion))
    await ledger.finish(booking, charge, "ok", {"role": "assistant", "content": "x"}, save_session=False)


def _events(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tollgate.budgets" and name in r.getMessage()]


async def test_tokens_above_the_reservation_overdraw_the_pool(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock("2026-11-26T10:00:00")
    ledger = await _ledger(store, clock)
    await store.set_capacity("acme", "team", 1000)
    await store.put_budget_rule(BudgetRule("acme", "pool", "team", None, alert_at=(50, 100)))
    sent = watch(ledger, store, clock)
    caplog.set_level(logging.WARNING, "tollgate.budgets")

    await _over(ledger, "r1", 300, 1200)  # held 300 (30%), used 1200: 200 past the capacity
    pool = await store.get_pool("acme", "team")
    assert pool is not None and (pool.used, pool.reserved) == (1200, 0)  # charged in full
    [view] = [v for v in await ledger.budgets.views("acme") if v["kind"] == "tokens"]
    assert (view["spent"], view["remaining"], view["overdrawn"]) == (1200, -200, 200)
    # the settle's answer was observed: 50% and 100% fired now, not at the next request
    assert [(a.budget_id, a.threshold, a.used) for a in sent.sent] == [
        ("tokens:team", 50, 1200),
        ("tokens:team", 100, 1200),
    ]
    [excess] = _events(caplog, "usage_above_reservation")
    [overdrawn] = _events(caplog, "budget_overdrawn")
    assert "r1" in excess and "900" in excess and "200" in overdrawn
    with pytest.raises(BudgetExceeded) as refused:  # the next request: refused, whatever it asks
        await ledger.reserve(ledger.book(KEY, None, "0" * 64), "r2", 1, MINI)
    assert refused.value.code == "budget_exceeded" and refused.value.budget is not None
    assert refused.value.budget["remaining"] == 0


async def test_usd_above_the_hold_overdraws_the_budget(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock("2026-11-26T10:00:00")
    ledger = await _ledger(store, clock)
    await store.put_budget_rule(BudgetRule("acme", "key", "key_a", 1000, "daily", alert_at=(80, 100)))
    sent = watch(ledger, store, clock)
    caplog.set_level(logging.WARNING, "tollgate.budgets")

    await _over(ledger, "r1", 100, 2000)  # holds 100 tokens x 0.60 = 60 micro-USD; costs 2000 x 0.60 = 1200
    [view] = [v for v in await ledger.budgets.views("acme") if v["kind"] == "usd"]
    assert (view["spent"], view["reserved"], view["remaining"], view["overdrawn"]) == (1200, 0, 0, 200)
    assert [(a.budget_id, a.period_key, a.threshold, a.used) for a in sent.sent] == [
        ("key:key_a", "2026-11-26", 80, 1200),
        ("key:key_a", "2026-11-26", 100, 1200),
    ]
    assert len(_events(caplog, "usage_above_reservation")) == 1
    assert len(_events(caplog, "budget_overdrawn")) == 1
    with pytest.raises(BudgetExceeded):
        await ledger.reserve(ledger.book(KEY, None, "0" * 64), "r2", 1, MINI)
    clock.set("2026-11-27T00:00:01")  # the next period starts clean: the overdraft does not carry over
    await _over(ledger, "r3", 100, 100)
    [view] = [v for v in await ledger.budgets.views("acme") if v["kind"] == "usd"]
    assert (view["spent"], view["overdrawn"]) == (60, 0)


async def test_usage_within_the_reservation_logs_nothing(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock("2026-11-26T10:00:00")
    ledger = await _ledger(store, clock)
    await store.set_capacity("acme", "team", 1000)
    await store.put_budget_rule(BudgetRule("acme", "key", "key_a", 1000, "daily"))
    caplog.set_level(logging.WARNING, "tollgate.budgets")
    await _over(ledger, "r1", 300, 300)
    assert not _events(caplog, "usage_above_reservation") and not _events(caplog, "budget_overdrawn")
    views = await ledger.budgets.views("acme")
    assert [v["overdrawn"] for v in views] == [0, 0]
    assert json.dumps(views)  # plain JSON for GET /v1/budgets


async def test_a_failing_overdraft_check_loses_no_money(
    store: Store, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks run after every money write: an alert store that fails leaves the pool settled and every
    USD hold (the key's and the pool's) settled, and logs the failure."""
    clock = Clock("2026-11-26T10:00:00")
    ledger = await _ledger(store, clock)
    await store.set_capacity("acme", "team", 1000)
    await store.put_budget_rule(BudgetRule("acme", "key", "key_a", 1000, "daily", alert_at=(80,)))
    await store.put_budget_rule(BudgetRule("acme", "pool", "team", 1000, "daily", alert_at=(80,)))
    watch(ledger, store, clock)
    assert ledger.alerts is not None

    async def broken(*_: object) -> None:
        raise RuntimeError("alert store down")

    booking = ledger.book(KEY, None, "0" * 64)
    await ledger.reserve(booking, "r1", 100, MINI)
    monkeypatch.setattr(ledger.alerts, "observe", broken)
    caplog.set_level(logging.ERROR, "tollgate.ledger")
    charge = Charge("acme", "key_a", "team", "r1", MINI.provider, MINI.model, Usage(0, 2000))
    await ledger.finish(booking, charge, "ok", {"role": "assistant", "content": "x"}, save_session=False)

    pool = await store.get_pool("acme", "team")
    assert pool is not None and (pool.used, pool.reserved) == (2000, 0)
    usd = sorted(
        (v["scope"], v["name"], v["spent"], v["reserved"])
        for v in await ledger.budgets.views("acme")
        if v["kind"] == "usd"
    )
    assert usd == [("key", "key_a", 1200, 0), ("pool", "team", 1200, 0)]
    failed = [r.getMessage() for r in caplog.records if "overdraft_check_failed" in r.getMessage()]
    assert len(failed) == 3 and all("alert store down" in line for line in failed)
