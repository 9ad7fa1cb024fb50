"""The ``AlertStore`` contract (``tollgate.store.alert_base``) on SQLite, moto and dynalite: an alert recorded
once per id, the pending list and the claim/finish outbox protocol (the thresholds are budget rules:
tests/contract/test_budget_store.py)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, cast

from tollgate.store.alert_base import DELIVERED, FAILED, PENDING, Alert, AlertStore, alert_id
from tollgate.store.base import Store
from tollgate.store.budget_records import counter_expiry
from tollgate.store.dynamodb import DynamoDBStore
from tollgate.store.dynamodb_alerts import alert_key
from tollgate.store.table import ttl_attribute

ALERT = Alert("acme", "tokens:team", "all", 80, 1000, 812, "2026-01-01T00:00:01.000000Z")


def alerts(store: Store) -> AlertStore:
    return cast(AlertStore, store)


async def test_an_alert_is_recorded_once(store: Store) -> None:
    assert await alerts(store).record_alert(ALERT)
    assert not await alerts(store).record_alert(replace(ALERT, used=999, at="2026-01-01T00:00:02.000000Z"))
    assert await alerts(store).get_alert("acme", ALERT.alert_id) == ALERT  # the first one stays
    other_period = replace(ALERT, period_key="2026-01")
    other_threshold = replace(ALERT, threshold=100)
    assert await alerts(store).record_alert(other_period)
    assert await alerts(store).record_alert(other_threshold)
    assert await alerts(store).record_alert(replace(ALERT, tenant="other"))
    ids = [a.alert_id for a in await alerts(store).list_alerts("acme")]
    assert ids == sorted([ALERT.alert_id, other_period.alert_id, other_threshold.alert_id])
    assert ALERT.alert_id == alert_id("tokens:team", "all", 80) == "tokens:team#all#080"
    assert await alerts(store).get_alert("acme", "missing") is None


async def test_pending_alerts_oldest_first_across_tenants(store: Store) -> None:
    late = replace(ALERT, tenant="b", at="2026-01-01T00:00:09.000000Z")
    early = replace(ALERT, tenant="a", at="2026-01-01T00:00:03.000000Z")
    for alert in (late, early):
        await alerts(store).record_alert(alert)
    assert [a.tenant for a in await alerts(store).pending_alerts()] == ["a", "b"]
    assert [a.tenant for a in await alerts(store).pending_alerts(limit=1)] == ["a"]


async def test_claim_and_finish(store: Store) -> None:
    box = alerts(store)
    await box.record_alert(ALERT)
    now, later = "2026-01-01T00:00:05.000000Z", "2026-01-01T00:01:05.000000Z"
    claimed = await box.claim_alert("acme", ALERT.alert_id, 0, now, now)
    assert claimed is not None and claimed.attempts == 1 and claimed.claimed_at == now
    assert await box.claim_alert("acme", ALERT.alert_id, 0, now, now) is None  # that attempt is taken
    assert await box.claim_alert("acme", ALERT.alert_id, 1, now, now) is None  # claimed too recently
    # a failed attempt stays pending with what was delivered, and is claimed again once stale
    assert await box.finish_alert("acme", ALERT.alert_id, 1, PENDING, ("eventbridge",), "webhook: down")
    pending = await box.pending_alerts()
    assert [(a.attempts, a.delivered, a.error) for a in pending] == [(1, ("eventbridge",), "webhook: down")]
    again = await box.claim_alert("acme", ALERT.alert_id, 1, later, later)
    assert again is not None and again.attempts == 2
    assert not await box.finish_alert("acme", ALERT.alert_id, 1, DELIVERED, (), "")  # an older attempt
    assert await box.finish_alert("acme", ALERT.alert_id, 2, DELIVERED, ("eventbridge", "webhook"), "")
    done = await box.get_alert("acme", ALERT.alert_id)
    assert done is not None and done.state == DELIVERED and done.delivered == ("eventbridge", "webhook")
    assert await box.pending_alerts() == []
    assert await box.claim_alert("acme", ALERT.alert_id, 2, later, "9999") is None  # delivered: done
    assert not await box.finish_alert("acme", ALERT.alert_id, 2, FAILED, (), "")


async def test_a_failed_alert_leaves_the_pending_list(store: Store) -> None:
    box = alerts(store)
    await box.record_alert(ALERT)
    await box.claim_alert("acme", ALERT.alert_id, 0, "2026-01-01T00:00:05.000000Z", "9999")
    assert await box.finish_alert("acme", ALERT.alert_id, 1, FAILED, (), "webhook: HTTP 500")
    assert await box.pending_alerts() == []
    assert (await box.get_alert("acme", ALERT.alert_id)).state == FAILED  # type: ignore[union-attr]


async def test_concurrent_records_and_claims_have_one_winner(concurrent_store: Store) -> None:
    box = alerts(concurrent_store)
    attempts: list[Any] = [box.record_alert(replace(ALERT, used=800 + i)) for i in range(20)]
    assert sum(await asyncio.gather(*attempts)) == 1
    now = "2026-01-01T00:00:05.000000Z"
    claims = await asyncio.gather(*(box.claim_alert("acme", ALERT.alert_id, 0, now, now) for _ in range(20)))
    assert sum(c is not None for c in claims) == 1


async def test_alerts_of_long_ended_periods_go_with_their_counters(store: Store) -> None:
    """Nothing can fire again for a period that ended (its counter has a new key), so its alerts go a week
    after it (as the counter does); a budget without periods (``all``) keeps them."""
    box = alerts(store)
    kept = [replace(ALERT, period_key=key) for key in ("all", "2026-11", "2026-11-25", "2026-W48")]
    old = [replace(ALERT, period_key=key) for key in ("2026-09", "2026-10-01", "2025-W40")]
    for alert in kept + old:
        assert await box.record_alert(alert)
    now = "2026-11-26T12:00:00.000000Z"
    if isinstance(store, DynamoDBStore):  # the table's TTL deletes them: each has its counter's expiry
        assert await box.sweep_alerts(now) == 0
        for alert in kept + old:
            item = await store._get(alert_key("acme", alert.alert_id))
            assert item is not None
            expiry = counter_expiry(alert.period_key)
            assert item.get(ttl_attribute()) == (None if expiry is None else {"N": str(expiry)})
        return
    assert await box.sweep_alerts(now) == len(old)
    assert {a.period_key for a in await box.list_alerts("acme")} == {a.period_key for a in kept}
    assert await box.sweep_alerts(now) == 0
