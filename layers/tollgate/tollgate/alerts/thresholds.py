"""A budget's use and the thresholds it has reached.

``BudgetUse`` is the one shape every budget reports after a reserve or a refusal (token pools today; USD
budgets with periods give the same tuple): ``used`` counts what is settled plus what is reserved.
"""

from __future__ import annotations

import json
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
    """Thresholds from "50,80,100" (the CLI) or [50, 80, 100] (JSON: integers only) -> (50, 80, 100):
    whole percents 1..100, deduplicated, sorted; "" -> (). ValueError (one line) on anything else."""
    if isinstance(values, str):
        items: list[object] = [v.strip() for v in values.split(",")] if values.strip() else []
    else:
        items = list(values)
    from_text, found = isinstance(values, str), set()
    for item in items:
        if from_text and isinstance(item, str) and item.isascii() and item.isdigit():
            number = int(item)
        elif not from_text and isinstance(item, int) and not isinstance(item, bool):
            number = item
        else:
            text = f"'{item}'" if isinstance(item, str) and from_text else json.dumps(item, default=str)
            shown = printable(text)
            raise ValueError(f"{shown} is not a whole percent (1..100)")
        if not 1 <= number <= 100:
            raise ValueError(f"{number} is not a whole percent (1..100)")
        found.add(number)
    if len(found) > MAX_THRESHOLDS:
        raise ValueError(f"at most {MAX_THRESHOLDS} thresholds")
    return tuple(sorted(found))


def printable(text: str) -> str:
    shown = "".join(c if c.isprintable() else "?" for c in text)
    return shown if len(shown) <= 20 else shown[:17] + "..."
