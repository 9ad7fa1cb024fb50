"""USD budgets with periods: the records and the store operations (``UsdBudgetStore``).

A ``BudgetRule`` is what an operator sets for a key or a pool: a USD limit per period (or none: only
``alert_at``), the period, its timezone and the alert thresholds. Spending is counted per period in a
``UsdCounter`` keyed by (tenant, budget id, period key): ``USD#<budget>#<period>`` on DynamoDB, a row in
SQLite. A counter is born on its period's first reservation, so a period starts clean without any reset job.

Amounts are integer micro-USD. Reservations mirror token reservations (``store.base``): held by id until
settled exactly once; the sweep charges one nobody settled and leaves a marker so a late settle corrects it.
This module imports nothing from ``store.base`` (which imports it); implementations raise
``store.base.Overdrawn`` when a reservation does not fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

KEY_SCOPE, POOL_SCOPE = "key", "pool"
SCOPES = (KEY_SCOPE, POOL_SCOPE)


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
        (amount, ``at``) for a late settle; markers swept before ``older_than`` are dropped first."""
