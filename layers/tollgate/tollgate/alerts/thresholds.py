"""A budget's use and the thresholds it has reached.

``BudgetUse`` is the one shape every budget reports after a reserve or a refusal (token pools today; USD
budgets with periods give the same tuple): ``used`` counts what is settled plus what is reserved.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MAX_THRESHOLDS = 10
TOKEN_POOL_PERIOD = ""  # token pools have no periods


@dataclass(frozen=True, slots=True)
class BudgetUse:
    tenant: str
    budget_id: str  # unique within the tenant, e.g. "pool:team:tokens"
    period_key: str  # the period the counter belongs to ("" when the budget has none)
    limit: int
    used: int  # settled + reserved
    alert_at: tuple[int, ...]  # percent thresholds, sorted


def token_pool_budget_id(pool: str) -> str:
    return f"pool:{pool}:tokens"


def reached(use: BudgetUse) -> tuple[int, ...]:
    """The thresholds ``use`` has reached (none for a budget without a positive limit)."""
    if use.limit <= 0:
        return ()
    return tuple(t for t in use.alert_at if use.used * 100 >= t * use.limit)


def parse_alert_at(values: str | Iterable[object]) -> tuple[int, ...]:
    """ "50,80,100" or [50, 80, 100] -> (50, 80, 100): integers 1..100, deduplicated, sorted; "" -> ().

    ValueError (one line) on anything else."""
    items = [v.strip() for v in values.split(",")] if isinstance(values, str) else list(values)
    if isinstance(values, str) and items == [""]:
        return ()
    found: set[int] = set()
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise ValueError(f"alert_at: {item!r} is not a whole percent (1..100)")
        text = str(item)
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 100:
            raise ValueError(f"alert_at: '{printable(text)}' is not a whole percent (1..100)")
        found.add(int(text))
    if len(found) > MAX_THRESHOLDS:
        raise ValueError(f"alert_at: at most {MAX_THRESHOLDS} thresholds")
    return tuple(sorted(found))


def printable(text: str) -> str:
    shown = "".join(c if c.isprintable() else "?" for c in text)
    return shown if len(shown) <= 20 else shown[:17] + "..."
