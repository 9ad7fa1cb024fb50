"""Money across time boundaries, on every backend, with injected clocks (one per "process").

- A request's token hold and its USD holds carry the ledger's own clock, the one the sweep compares with:
  a process whose clock is ahead never sweeps its own live request.
- A budget whose period the operator changes while a request holds money: the request settles into the
  counter it reserved in (nothing stays held there); the new period's counter starts on its own.
- A hold swept after its period ended is charged to that period; its late settle corrects it there.
- Two processes whose clocks straddle midnight each charge the day their own clock says (the skew is the
  only window in which a daily budget can be spent twice over: ``docs/budgets.md``).
"""

from __future__ import annotations

from datetime import timedelta

from tests.contract.test_usd_budgets import KEY, MINI, PRICES, Clock, _ledger
from tollgate.ledger import Charge, Ledger
from tollgate.providers.base import Usage
from tollgate.store.base import Store
from tollgate.store.budget_records import BudgetRule
from tollgate.sweeper import Sweeper
from tollgate.timeutil import format_time

COUNTER = "key:key_a"


def _charge(rid: str, completion: int) -> Charge:
    return Charge("acme", "key_a", "team", rid, "openai", "gpt-4o-mini", Usage(0, completion))


async def test_every_hold_of_a_request_carries_the_ledgers_clock(store: Store) -> None:
    clock = Clock("2031-05-01T12:00:00")  # far from the real time: a hold stamped with it shows
    ledger = await _ledger(store, clock)
    await store.put_budget_rule(BudgetRule("acme", "key", "key_a", 10_000, "daily"))
    await ledger.reserve(ledger.book(KEY, None, "0" * 64), "r1", 1000, MINI)
    pool = await store.get_pool("acme", "team")
    usd = await store.get_usd_counter("acme", COUNTER, "2031-05-01")
    assert pool is not None and pool.reservations["r1"] == (1000, format_time(clock.now))
    assert usd is not None and usd.reservations["r1"] == (600, format_time(clock.now))
    # a sweep on that clock leaves the live request alone; one past the maximum age charges it
    assert (await Sweeper(store, ledger, 1800, clock=clock).sweep())["reservations_swept"] == 0
    later = Clock(format_time(clock.now + timedelta(seconds=1801))[:-1])
    assert (await Sweeper(store, ledger, 1800, clock=later).sweep())["reservations_swept"] == 1


async def test_a_period_changed_while_a_request_holds_settles_where_it_reserved(store: Store) -> None:
    clock = Clock("2026-11-26T10:00:00")
    ledger = await _ledger(store, clock)
    await store.put_budget_rule(BudgetRule("acme", "key", "key_a", 1_000, "daily"))
    held = ledger.book(KEY, None, "0" * 64)
    await ledger.reserve(held, "r1", 1000, MINI)  # holds 600 in the day's counter
    await store.put_budget_rule(BudgetRule("acme", "key", "key_a", 1_000, "monthly"))  # the operator
    other = Ledger(store, PRICES, audit_key=None, session_keep=10, session_ttl=60, clock=clock)
    await other.reserve(other.book(KEY, None, "0" * 64), "r2", 1000, MINI)  # the month's: a new counter
    await ledger.finish(held, _charge("r1", 100), "ok", None, save_session=False)
    day = await store.get_usd_counter("acme", COUNTER, "2026-11-26")
    month = await store.get_usd_counter("acme", COUNTER, "2026-11")
    assert day is not None and (day.used, day.reserved, day.reservations) == (60, 0, {})
    assert month is not None and (month.used, month.reserved, set(month.reservations)) == (0, 600, {"r2"})


async def test_a_hold_swept_after_its_period_is_charged_and_corrected_in_that_period(store: Store) -> None:
    clock = Clock("2026-11-30T23:59:00")  # a long stream that starts a minute before the month ends
    ledger = await _ledger(store, clock)
    await store.put_budget_rule(BudgetRule("acme", "key", "key_a", 10_000, "monthly"))
    held = ledger.book(KEY, None, "0" * 64)
    await ledger.reserve(held, "r1", 1000, MINI)
    swept_at = Clock("2026-12-01T01:00:00")
    report = await Sweeper(store, ledger, 1800, clock=swept_at).sweep()
    assert (report["reservations_swept"], report["usd_reservations_swept"]) == (1, 1)
    november = await store.get_usd_counter("acme", COUNTER, "2026-11")
    assert november is not None and (november.used, november.reserved) == (600, 0)
    assert await store.get_usd_counter("acme", COUNTER, "2026-12") is None
    clock.set("2026-12-01T01:05:00")
    await ledger.finish(held, _charge("r1", 100), "ok", None, save_session=False)  # it came back
    november = await store.get_usd_counter("acme", COUNTER, "2026-11")
    assert november is not None and (november.used, november.reserved, november.swept) == (60, 0, {})
    assert await store.get_usd_counter("acme", COUNTER, "2026-12") is None


async def test_processes_whose_clocks_straddle_midnight_each_charge_their_own_day(store: Store) -> None:
    behind, ahead = Clock("2026-11-26T23:59:50"), Clock("2026-11-27T00:00:10")
    one = await _ledger(store, behind)
    two = Ledger(store, PRICES, audit_key=None, session_keep=10, session_ttl=60, clock=ahead)
    await store.put_budget_rule(BudgetRule("acme", "key", "key_a", 600, "daily"))
    first, second = one.book(KEY, None, "0" * 64), two.book(KEY, None, "0" * 64)
    await one.reserve(first, "r1", 1000, MINI)  # 600: the whole of the 26th
    await two.reserve(second, "r2", 1000, MINI)  # 600: the whole of the 27th, 20 s of skew apart
    for ledger, booking, rid in ((one, first, "r1"), (two, second, "r2")):
        await ledger.finish(booking, _charge(rid, 1000), "ok", None, save_session=False)
    for day in ("2026-11-26", "2026-11-27"):
        counter = await store.get_usd_counter("acme", COUNTER, day)
        assert counter is not None and (counter.used, counter.reserved) == (600, 0)
