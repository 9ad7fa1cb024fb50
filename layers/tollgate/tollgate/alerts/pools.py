"""Today's token pools as budgets for alerts: a pool with a capacity and thresholds is one budget,
``pool:<name>:tokens``, without periods (period key ""). Errors are logged, never raised."""

from __future__ import annotations

import logging

from ..logs import log_event
from ..store.base import BudgetStore, Pool
from .thresholds import TOKEN_POOL_PERIOD, BudgetUse, token_pool_budget_id
from .watch import AlertWatch

logger = logging.getLogger("tollgate.alerts")


def pool_use(pool: Pool) -> BudgetUse | None:
    """The pool's use as a budget (None without a capacity or without thresholds)."""
    if pool.capacity is None or not pool.alert_at:
        return None
    used = pool.used + pool.reserved
    budget = token_pool_budget_id(pool.pool)
    return BudgetUse(pool.tenant, budget, TOKEN_POOL_PERIOD, pool.capacity, used, pool.alert_at)


async def pool_reserved(watch: AlertWatch, pool: Pool) -> None:
    """After a reserve: ``pool`` is the store's answer (the reservation included)."""
    use = pool_use(pool)
    if use is not None:
        await watch.observe(use)


async def pool_refused(watch: AlertWatch, store: BudgetStore, tenant: str, name: str) -> None:
    """After a refusal: read the pool once (per process and pool: then every threshold has fired)."""
    if watch.refusal_seen(tenant, token_pool_budget_id(name), TOKEN_POOL_PERIOD):
        return
    try:
        pool = await store.get_pool(tenant, name)
    except Exception as exc:
        log_event(logger, logging.ERROR, "alert_pool_read_failed", pool=name, error=str(exc)[:200])
        return
    use = None if pool is None else pool_use(pool)
    if use is not None:
        await watch.refused(use)
