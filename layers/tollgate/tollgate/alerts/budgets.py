"""Where budgets meet alerts (independent of HTTP). Errors are logged, never raised.

After a reserve, each budget the request holds is observed with the use the store's own answers report:
its key's and its pool's USD budgets in their current period (``Hold.used``, micro-USD) and its pool's
token capacity (the reserved ``Pool``; budget ``tokens:<pool>``, period ``all``). After a refusal, the
refused budget counts as at 100%. The thresholds are the budget rules' ``alert_at`` (a pool's covers its
USD budget and its token capacity), taken from the rules the reserve itself read (``Budgets.applicable``,
cached per process), so a request pays no extra read; a budget without thresholds costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..budget_periods import window
from ..budgets import AlertLevel, Hold
from ..errors import BudgetExceeded
from ..logs import log_event
from ..store.base import BudgetStore, Pool
from ..store.budget_records import POOL_SCOPE, BudgetRule, budget_id
from ..timeutil import Clock
from .watch import AlertWatch

logger = logging.getLogger("tollgate.alerts")
TOKEN_PERIOD = "all"  # noqa: S105 (a token pool's capacity has no periods; not a secret)


def token_budget_id(pool: str) -> str:
    return f"tokens:{pool}"


def _find(rules: Sequence[BudgetRule], budget: str) -> BudgetRule | None:
    return next((r for r in rules if r.budget_id == budget), None)


def pool_watched(rules: Sequence[BudgetRule], pool: str) -> bool:
    """Whether the pool's rule has alert thresholds: then a reserve's answer must carry its real totals."""
    rule = _find(rules, budget_id(POOL_SCOPE, pool))
    return rule is not None and bool(rule.alert_at)


def pool_level(tenant: str, rules: Sequence[BudgetRule], pool: Pool) -> AlertLevel | None:
    """The pool's token use (None without a capacity or without thresholds on the pool's rule)."""
    rule = _find(rules, budget_id(POOL_SCOPE, pool.pool))
    if rule is None or not rule.alert_at or pool.capacity is None:
        return None
    used = pool.used + pool.reserved
    return AlertLevel(tenant, token_budget_id(pool.pool), TOKEN_PERIOD, pool.capacity, used, rule.alert_at)


def usd_levels(tenant: str, rules: Sequence[BudgetRule], holds: Sequence[Hold]) -> list[AlertLevel]:
    """The USD budgets held, those with thresholds."""
    levels: list[AlertLevel] = []
    for hold in holds:
        rule = _find(rules, hold.budget_id)
        if rule is not None and rule.alert_at and rule.usd_limit is not None:
            levels.append(
                AlertLevel(tenant, hold.budget_id, hold.period_key, rule.usd_limit, hold.used, rule.alert_at)
            )
    return levels


async def reserved(
    watch: AlertWatch, tenant: str, rules: Sequence[BudgetRule], holds: Sequence[Hold], pool: Pool | None
) -> None:
    """After a reserve: ``holds`` are the USD holds, ``pool`` the token reserve's answer (None: none)."""
    levels = usd_levels(tenant, rules, holds)
    level = None if pool is None else pool_level(tenant, rules, pool)
    for use in [*levels, *([level] if level is not None else [])]:
        await watch.observe(use)


async def usd_refused(
    watch: AlertWatch, tenant: str, rules: Sequence[BudgetRule], refusal: BudgetExceeded, clock: Clock
) -> None:
    """After a USD budget refused a request (``refusal.budget`` names it): its period is the one at
    ``clock()`` and its use what the refusal reports (limit - remaining)."""
    named = refusal.budget or {}
    if named.get("kind") != "usd":
        return
    rule = _find(rules, budget_id(str(named.get("scope")), str(named.get("name"))))
    if rule is None or not rule.alert_at or rule.usd_limit is None:
        return
    period = window(rule.period, rule.timezone, clock()).key
    if watch.refusal_seen(tenant, rule.budget_id, period):
        return
    used = rule.usd_limit - int(named.get("remaining") or 0)
    await watch.refused(AlertLevel(tenant, rule.budget_id, period, rule.usd_limit, used, rule.alert_at))


async def pool_refused(
    watch: AlertWatch, store: BudgetStore, tenant: str, rules: Sequence[BudgetRule], name: str
) -> None:
    """After a token pool refused a request: read the pool once (per process and pool, and only when
    its rule has thresholds; after that every threshold has fired)."""
    rule = _find(rules, budget_id(POOL_SCOPE, name))
    if rule is None or not rule.alert_at or watch.refusal_seen(tenant, token_budget_id(name), TOKEN_PERIOD):
        return
    try:
        pool = await store.get_pool(tenant, name)
    except Exception as exc:
        log_event(logger, logging.ERROR, "alert_pool_read_failed", pool=name, error=str(exc)[:200])
        return
    level = None if pool is None else pool_level(tenant, rules, pool)
    if level is not None:
        await watch.refused(level)
