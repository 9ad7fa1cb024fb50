"""A budget's use and the thresholds it has reached.

Every budget reports the same shape after a reserve or a refusal, ``budgets.AlertLevel`` (here
``BudgetUse``): tenant, budget id, period key, limit, used (settled + reserved) and its thresholds in
percent (a budget rule's ``alert_at``).
"""

from __future__ import annotations

from ..budgets import AlertLevel

BudgetUse = AlertLevel
REFUSED_PERCENT = 100  # a refusal counts as this much use


def reached(use: BudgetUse) -> tuple[int, ...]:
    """The thresholds ``use`` has reached (none for a budget without a positive limit)."""
    if use.limit <= 0:
        return ()
    return tuple(t for t in use.alert_at if use.used * 100 >= t * use.limit)


def reached_by_refusal(use: BudgetUse) -> tuple[int, ...]:
    """The thresholds a refusal reaches: every one up to 100% (one above can never be reached)."""
    return tuple(t for t in use.alert_at if t <= REFUSED_PERCENT) if use.limit > 0 else ()
