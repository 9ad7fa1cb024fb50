"""The records and the store Protocol of budget threshold alerts (``tollgate.alerts``).

An alert is recorded once per (tenant, budget, period, threshold) by one conditional write (its key is
those four), and the record is its own outbox: ``pending`` until every channel took it, then
``delivered`` (or ``failed`` after too many attempts). A delivery attempt first *claims* the record (a
conditional write that bumps ``attempts`` and stamps ``claimed_at``), so two senders never work on the same
attempt, and a claim older than the retry delay may be taken over by the sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
STATES = (PENDING, DELIVERED, FAILED)


def alert_id(budget_id: str, period_key: str, threshold: int) -> str:
    """The record's id inside its tenant: one per budget, period and threshold."""
    return f"{budget_id}#{period_key}#{threshold:03d}"


@dataclass(frozen=True, slots=True)
class Alert:
    tenant: str
    budget_id: str
    period_key: str  # e.g. "2026-11"; "all" for a budget without periods (a token pool's capacity)
    threshold: int  # percent of the limit
    limit: int
    used: int  # settled + reserved when it fired
    at: str  # when it fired
    state: str = PENDING
    attempts: int = 0
    claimed_at: str = ""  # when the latest attempt began ("": never)
    delivered: tuple[str, ...] = ()  # the channels that took it (a retry skips them)
    error: str = ""  # the latest failure, short

    @property
    def alert_id(self) -> str:
        return alert_id(self.budget_id, self.period_key, self.threshold)


class AlertStore(Protocol):
    async def record_alert(self, alert: Alert) -> bool:
        """Insert the alert unless one with its id exists (one conditional write); whether inserted."""

    async def get_alert(self, tenant: str, alert_id: str) -> Alert | None: ...

    async def list_alerts(self, tenant: str) -> list[Alert]:
        """The tenant's alerts, by id."""

    async def pending_alerts(self, limit: int = 100) -> list[Alert]:
        """Alerts of every tenant still ``pending``, oldest first, at most ``limit``."""

    async def claim_alert(
        self, tenant: str, alert_id: str, attempts: int, claimed_at: str, stale_before: str
    ) -> Alert | None:
        """Start attempt ``attempts + 1``: only if the alert is pending, still at ``attempts`` and not
        claimed at or after ``stale_before``; the alert as claimed, or None when another sender has it."""

    async def finish_alert(
        self, tenant: str, alert_id: str, attempts: int, state: str, delivered: tuple[str, ...], error: str
    ) -> bool:
        """Record attempt ``attempts``'s outcome if no later attempt claimed the alert; whether recorded."""

    async def sweep_alerts(self, now: str) -> int:
        """Delete the alerts of periods that ended ``budget_records.EXPIRY_MARGIN`` ago or more (nothing
        can fire for them again: no hold is made in a period that has ended; the budget's counter goes then
        or later); how many. A budget without periods (``all``) keeps its alerts. On DynamoDB the table's
        TTL deletes them (0 here; records written before they carried the TTL attribute stay)."""
