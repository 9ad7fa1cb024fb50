"""USD budgets with periods: the records and the store operations (``UsdBudgetStore``).

A ``BudgetRule`` is what an operator sets for a key or a pool: a USD limit per period (or none: only
``alert_at``), the period, its timezone and the alert thresholds. Spending is counted per period in a
``UsdCounter`` keyed by (tenant, budget id, period key): ``USD#<budget>#<period>`` on DynamoDB, a row in
SQLite. A counter is born on its period's first reservation, so a period starts clean without any reset job.

Amounts are integer micro-USD. Reservations mirror token reservations (``store.base``): held by id until
settled exactly once; the sweep charges one nobody settled and leaves a marker so a late settle corrects it.
This module imports nothing from ``store.base`` (which imports it); implementations raise
``store.base.Overdrawn`` when a reservation does not fit.

Counters do not pile up (``docs/budgets.md``): a period's counter expires ``EXPIRY_MARGIN`` (7 days, at
least twice the sweep's cutoff age) after the latest moment its period can end in any timezone
(``period_end_bound``: one day after the key's UTC end), so every hold in it is swept and every late settle
corrected first; an ``all`` (no period) counter never expires. The sweep reads only counters whose key sorts
at or after ``sweep_floor``: a bound on the period key itself (``YYYY-MM-DD`` of 33 days before now minus
the margin), which every daily, weekly (``YYYY-Www``), monthly (``YYYY-MM``) and ``all`` key that has not
expired sorts after, whatever the budget's period was when the counter was made. What sorts below it has
expired: nothing can be held there (a hold is made before its period ends, and is swept ``max age`` later).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

KEY_SCOPE, POOL_SCOPE = "key", "pool"
SCOPES = (KEY_SCOPE, POOL_SCOPE)


EXPIRY_MARGIN = timedelta(days=7)
NO_PERIOD_KEY = "all"
_TZ_SLACK = timedelta(days=1)  # a local midnight is at most 12 hours after the UTC one
_LONGEST_PERIOD = timedelta(days=31)


def period_end_bound(period_key: str) -> datetime | None:
    """The latest moment (UTC) the period of ``period_key`` can end in any timezone; None: never ends."""
    if period_key == NO_PERIOD_KEY:
        return None
    if "-W" in period_key:  # weekly: the ISO week's Monday + 7 days
        year, week = period_key.split("-W")
        end = date.fromisocalendar(int(year), int(week), 1) + timedelta(days=7)
    elif period_key.count("-") == 2:  # daily
        end = date.fromisoformat(period_key) + timedelta(days=1)
    else:  # monthly
        y, m = (int(part) for part in period_key.split("-"))
        end = date(y + (m == 12), m % 12 + 1, 1)
    return datetime(end.year, end.month, end.day, tzinfo=UTC) + _TZ_SLACK


def counter_expiry(period_key: str, margin: timedelta = EXPIRY_MARGIN) -> int | None:
    """Epoch seconds after which the counter may be deleted (DynamoDB's TTL); None: it never expires."""
    end = period_end_bound(period_key)
    return None if end is None else int((end + margin).timestamp())


def sweep_margin(older_than: datetime, now: datetime) -> timedelta:
    """How long after its period ends a counter may still hold something to sweep or correct."""
    return max(EXPIRY_MARGIN, 2 * (now - older_than))


def sweep_floor(now: datetime, margin: timedelta) -> str:
    """A period key every unexpired counter's key sorts at or after (and every key below it has expired).

    Daily ``YYYY-MM-DD`` keys from this day on, monthly ``YYYY-MM`` keys of later months (the floor's own
    month ended more than the margin ago), weekly ``YYYY-Www`` keys of this ISO year or later (``W`` sorts
    after digits; earlier years' weeks have ended) and ``all`` (letters sort after digits)."""
    day = (now - margin - _LONGEST_PERIOD - 2 * _TZ_SLACK).date()
    return day.isoformat()


def budget_id(scope: str, name: str) -> str:
    """``key:<key_id>`` or ``pool:<pool>`` (unambiguous: the scope comes first and holds no colon)."""
    return f"{scope}:{name}"


@dataclass(frozen=True, slots=True)
class BudgetRule:
    """An operator's budget settings for one key or pool of a tenant."""

    tenant: str
    scope: str  # "key" | "pool"
    name: str  # the key id or the pool
    usd_limit: int | None = None  # micro-USD per period; None: no USD budget (the rule holds alert_at only)
    period: str = "none"  # daily | weekly | monthly | none
    timezone: str = "UTC"
    alert_at: tuple[int, ...] = ()  # percents; for the USD budget and, on a pool, its token capacity too

    @property
    def budget_id(self) -> str:
        return budget_id(self.scope, self.name)


@dataclass(frozen=True, slots=True)
class UsdCounter:
    """One budget's spending in one period (micro-USD)."""

    tenant: str
    budget_id: str
    period_key: str
    used: int = 0
    reserved: int = 0
    reservations: dict[str, tuple[int, str]] = field(default_factory=dict)  # id -> (amount, reserved at)
    swept: dict[str, tuple[int, str]] = field(default_factory=dict)  # id -> (amount charged, swept at)


@dataclass(frozen=True, slots=True)
class UsdReservation:
    """A USD reservation the sweep charged (its upper bound) because nobody settled it."""

    tenant: str
    budget_id: str
    period_key: str
    reservation_id: str
    amount: int
    at: str


class UsdBudgetStore(Protocol):
    async def put_budget_rule(self, rule: BudgetRule) -> None:
        """Create or replace the rule of (tenant, scope, name); counters stay."""

    async def get_budget_rules(self, tenant: str, budget_ids: list[str]) -> list[BudgetRule]:
        """The rules among ``budget_ids`` that exist (consistent read), in no particular order."""

    async def list_budget_rules(self, tenant: str | None = None) -> list[BudgetRule]:
        """Every rule, one tenant's when given, by (tenant, scope, name)."""

    async def reserve_usd(
        self,
        tenant: str,
        budget: str,
        period_key: str,
        reservation: tuple[str, int, str],
        limit: int,
    ) -> UsdCounter:
        """One conditional write: hold ``amount`` (``reservation`` = (id, amount, at)) in the period's
        counter if used + reserved + amount <= ``limit``; the counter is created on first use. Reserving an
        id already held changes nothing. Raises ``Overdrawn`` (what was left, never below 0) otherwise."""

    async def settle_usd(
        self,
        tenant: str,
        budget: str,
        period_key: str,
        reservation_id: str,
        actual: int,
        *,
        reserved: int | None = None,
    ) -> UsdCounter | None:
        """One conditional write: release the reservation and charge ``actual``; after the sweep took it,
        correct its charge to ``actual`` (the marker goes). None (nothing changed) when neither is there.
        ``reserved``: the amount the caller holds (its reserve's), so a backend may settle without reading
        first; any other state (a different amount, swept, settled) is then found as without it."""

    async def get_usd_counter(self, tenant: str, budget: str, period_key: str) -> UsdCounter | None: ...

    async def sweep_usd_reservations(self, older_than: str, at: str) -> list[UsdReservation]:
        """Charge the USD reservations made before ``older_than`` (their upper bound), leaving a marker
        (amount, ``at``) for a late settle; markers swept before ``older_than`` are dropped first. Reads
        only counters whose period key sorts at or after ``sweep_floor`` (the others have expired: SQLite
        deletes them here, DynamoDB's TTL later)."""
