"""Usage above what a request reserved: the policy, in one place.

A request holds an upper bound before the upstream call (its prompt bound plus ``max_tokens``, or the
default reply bound; in USD that many tokens at the model's highest rate). An upstream can still report
more: one that ignores ``max_tokens``, a tokenizer that counts the prompt higher than tollgate's bound,
tool or cache tokens tollgate cannot see. Then:

1. **The request is charged what it used**, in full: the audit entry, the cost rollups and every budget
   get the real usage and cost (under-charging would make the audit log lie).
2. **The budget records the overdraft**: spent (+ reserved) may pass the limit; every budget view
   (``GET /v1/budgets``, ``tollgate budgets show``, the admin API) says ``overdrawn`` (how far past the
   limit, 0 otherwise) and ``remaining`` is then 0 (USD) or negative (token pools, as before).
3. **The next request is refused**: a reserve needs ``remaining`` to cover its whole bound, so nothing is
   admitted until the period resets or the limit is raised (429 ``budget_exceeded``, naming the budget).
4. **It is logged and alerted now**: a warning ``usage_above_reservation`` (request id, budget, reserved,
   used; never the prompt) for every budget with a limit that such a settle charged, and
   ``budget_overdrawn`` when it took the budget past its limit; the settle's own answer is observed like
   a reserve's, so a threshold the excess crosses (100% included) fires at once, not when the next request
   is refused. No read is added.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from .alerts import budgets as budget_alerts
from .alerts.watch import AlertWatch
from .budgets import AlertLevel, Hold, overdrawn
from .logs import log_event
from .store.base import Pool
from .store.budget_records import BudgetRule, UsdCounter

logger = logging.getLogger("tollgate.budgets")


async def tokens_settled(
    watch: AlertWatch | None,
    rules: Sequence[BudgetRule],
    pool: Pool | None,
    request_id: str,
    reserved: int,
    actual: int,
) -> None:
    """After a token pool's settle (``pool``: its answer, totals only; None when nothing was settled).
    An unlimited pool has nothing to overdraw: nothing is logged for it."""
    if pool is None or pool.capacity is None or actual <= reserved:
        return
    budget = budget_alerts.token_budget_id(pool.pool)
    _log_excess(pool.tenant, budget, request_id, reserved, actual, "tokens")
    over = overdrawn(pool.capacity, pool.used, pool.reserved)
    if over:
        _log_overdrawn(pool.tenant, budget, request_id, pool.capacity, over, "tokens")
    if watch is not None:
        level = budget_alerts.pool_level(pool.tenant, rules, pool)
        if level is not None:
            await watch.observe(level)


async def usd_settled(
    watch: AlertWatch | None,
    tenant: str,
    rules: Sequence[BudgetRule],
    hold: Hold,
    counter: UsdCounter | None,
    request_id: str,
    cost: int,
) -> None:
    """After one USD hold's settle (``counter``: the settle's answer; None when nothing was settled)."""
    if counter is None or cost <= hold.amount:
        return
    _log_excess(tenant, hold.budget_id, request_id, hold.amount, cost, "micro_usd")
    rule = next((r for r in rules if r.budget_id == hold.budget_id), None)
    limit = None if rule is None else rule.usd_limit
    over = overdrawn(limit, counter.used, counter.reserved)
    if over:
        _log_overdrawn(tenant, hold.budget_id, request_id, limit, over, "micro_usd")
    if watch is not None and rule is not None and rule.alert_at and limit is not None:
        used = counter.used + counter.reserved
        await watch.observe(AlertLevel(tenant, hold.budget_id, hold.period_key, limit, used, rule.alert_at))


def _log_excess(tenant: str, budget: str, request_id: str, reserved: int, used: int, unit: str) -> None:
    log_event(
        logger,
        logging.WARNING,
        "usage_above_reservation",
        tenant=tenant,
        budget=budget,
        request_id=request_id,
        reserved=reserved,
        used=used,
        excess=used - reserved,
        unit=unit,
    )


def _log_overdrawn(
    tenant: str, budget: str, request_id: str, limit: int | None, over: int, unit: str
) -> None:
    log_event(
        logger,
        logging.WARNING,
        "budget_overdrawn",
        tenant=tenant,
        budget=budget,
        request_id=request_id,
        limit=limit,
        overdrawn=over,
        unit=unit,
    )
