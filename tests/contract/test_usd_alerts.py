"""USD budget alerts through the ledger on every backend (``store``: SQLite, moto, dynalite), with an
injected clock: the pool's rule (its ``alert_at`` covers its USD budget and its token capacity) fires on a
reserve with the reserve's own use, on a refusal as 100%, once per (budget, period, threshold), and again in
the next period; a hold released because another budget refused fires nothing."""

from __future__ import annotations

from typing import cast

import pytest

from tests.contract.test_usd_budgets import KEY, MINI, Clock, _ledger, _run
from tollgate.alerts.outbox import Outbox
from tollgate.alerts.watch import AlertWatch
from tollgate.errors import BudgetExceeded
from tollgate.ledger import Ledger
from tollgate.store.alert_base import Alert
from tollgate.store.base import Store
from tollgate.store.budget_records import BudgetRule


class Recorder:
    """Stands in for the outbox: what would be delivered."""

    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def deliver_soon(self, alert: Alert) -> None:
        self.sent.append(alert)


def watch(ledger: Ledger, store: Store, clock: Clock) -> Recorder:
    recorder = Recorder()
    ledger.alerts = AlertWatch(store, cast(Outbox, recorder), clock)
    return recorder


async def test_usd_and_token_thresholds_fire_once_per_period(store: Store) -> None:
    clock = Clock("2026-11-26T10:00:00")
    ledger = await _ledger(store, clock)
    await store.set_capacity("acme", "team", 4000)
    await store.put_budget_rule(BudgetRule("acme", "pool", "team", 1000, "monthly", alert_at=(50, 100)))
    await store.put_budget_rule(BudgetRule("acme", "key", "key_a", 1500, "daily", alert_at=(80,)))
    sent = watch(ledger, store, clock)

    await _run(ledger, "r1", 0, 500)  # holds 600 micro-USD in each budget (60% of the pool's), costs 300
    assert [(a.budget_id, a.period_key, a.threshold, a.used) for a in sent.sent] == [
        ("pool:team", "2026-11", 50, 600)
    ]
    await _run(ledger, "r2", 0, 500)  # the pool at 300 + 600: nothing new
    for rid in ("r3", "r3b"):  # 600 + 600 > 1000: refused by the pool's USD budget (twice)
        with pytest.raises(BudgetExceeded):
            await ledger.reserve(ledger.book(KEY, None, "0" * 64), rid, 1000, MINI)
    # the refusal counts as 100% (used as it was: 1000 - 400 remaining); the key's hold (1200 of 1500, 80%)
    # was released because the pool refused, so the key fired nothing
    assert [(a.budget_id, a.period_key, a.threshold, a.used) for a in sent.sent[1:]] == [
        ("pool:team", "2026-11", 100, 600)
    ]
    other = Ledger(store, ledger.pricing, audit_key=None, session_keep=10, session_ttl=60, clock=clock)
    elsewhere = watch(other, store, clock)  # another process: its own watch, the same records
    with pytest.raises(BudgetExceeded):
        await other.reserve(other.book(KEY, None, "0" * 64), "r3c", 1000, MINI)
    assert elsewhere.sent == []

    clock.set("2026-12-01T00:00:01")  # a new period: the USD counter starts clean and alerts anew
    await _run(ledger, "r4", 0, 500)  # tokens: 1000 used + 1000 reserved = 50% of 4000
    assert [(a.budget_id, a.period_key, a.threshold, a.used, a.limit) for a in sent.sent[2:]] == [
        ("pool:team", "2026-12", 50, 600, 1000),
        ("tokens:team", "all", 50, 2000, 4000),
    ]
    recorded = {a.alert_id for a in await store.list_alerts("acme")}
    assert recorded == {a.alert_id for a in sent.sent} and len(recorded) == 4


async def test_a_budget_without_thresholds_records_nothing(store: Store) -> None:
    clock = Clock("2026-11-26T10:00:00")
    ledger = await _ledger(store, clock)
    await store.set_capacity("acme", "team", 1000)
    await store.put_budget_rule(BudgetRule("acme", "pool", "team", 700, "monthly"))
    sent = watch(ledger, store, clock)
    await _run(ledger, "r1", 0, 1000)  # 100% of both (600 held of 700 is 85%)
    with pytest.raises(BudgetExceeded):
        await ledger.reserve(ledger.book(KEY, None, "0" * 64), "r2", 1000, MINI)
    assert sent.sent == [] and await store.list_alerts("acme") == []
