"""The SQLite ``AlertStore``: the statements (functions of a connection, as ``sqlite_ops``) and the mixin
that runs them for ``SQLiteStore``. One row per alert, keyed (tenant, alert_id): ``INSERT OR IGNORE`` is the
conditional write that makes an alert fire once."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..timeutil import parse_time
from .alert_base import PENDING, Alert
from .budget_records import EXPIRY_MARGIN, sweep_floor

if TYPE_CHECKING:
    from .sqlite import _Runner

_COLUMNS = (
    "tenant, budget_id, period_key, threshold, budget_limit, used, at, state, attempts, claimed_at, "
    "delivered, error"
)


def _alert(row: Sequence[Any]) -> Alert:
    tenant, budget_id, period_key, threshold, limit, used, at, state, attempts, claimed, delivered, err = row
    channels = tuple(c for c in str(delivered).split(",") if c)
    return Alert(
        tenant, budget_id, period_key, int(threshold), int(limit), int(used), at, state, int(attempts),
        claimed, channels, err,
    )  # fmt: skip


def record_alert(conn: sqlite3.Connection, alert: Alert) -> bool:
    cursor = conn.execute(
        f"INSERT OR IGNORE INTO alerts (alert_id, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        (
            alert.alert_id, alert.tenant, alert.budget_id, alert.period_key, alert.threshold, alert.limit,
            alert.used, alert.at, alert.state, alert.attempts, alert.claimed_at, ",".join(alert.delivered),
            alert.error,
        ),
    )  # fmt: skip
    return cursor.rowcount > 0


def get_alert(conn: sqlite3.Connection, tenant: str, alert_id: str) -> Alert | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM alerts WHERE tenant = ? AND alert_id = ?",  # noqa: S608
        (tenant, alert_id),
    ).fetchone()
    return None if row is None else _alert(row)


def list_alerts(conn: sqlite3.Connection, tenant: str) -> list[Alert]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM alerts WHERE tenant = ? ORDER BY alert_id",  # noqa: S608
        (tenant,),
    )
    return [_alert(row) for row in rows]


def pending_alerts(conn: sqlite3.Connection, limit: int) -> list[Alert]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM alerts WHERE state = ? ORDER BY at, tenant, alert_id LIMIT ?",  # noqa: S608
        (PENDING, limit),
    )
    return [_alert(row) for row in rows]


def claim_alert(
    conn: sqlite3.Connection, tenant: str, alert_id: str, attempts: int, claimed_at: str, stale_before: str
) -> Alert | None:
    cursor = conn.execute(
        "UPDATE alerts SET attempts = attempts + 1, claimed_at = ? "
        "WHERE tenant = ? AND alert_id = ? AND state = ? AND attempts = ? AND claimed_at < ?",
        (claimed_at, tenant, alert_id, PENDING, attempts, stale_before),
    )
    return get_alert(conn, tenant, alert_id) if cursor.rowcount else None


def finish_alert(
    conn: sqlite3.Connection,
    tenant: str,
    alert_id: str,
    attempts: int,
    state: str,
    delivered: tuple[str, ...],
    error: str,
) -> bool:
    cursor = conn.execute(
        "UPDATE alerts SET state = ?, delivered = ?, error = ? "
        "WHERE tenant = ? AND alert_id = ? AND state = ? AND attempts = ?",
        (state, ",".join(delivered), error, tenant, alert_id, PENDING, attempts),
    )
    return cursor.rowcount > 0


def drop_expired(conn: sqlite3.Connection, floor: str) -> int:
    """The alerts whose period key sorts below ``floor`` (``budget_records.sweep_floor``: those periods
    ended long ago; ``all`` sorts after every date)."""
    return conn.execute("DELETE FROM alerts WHERE period_key < ?", (floor,)).rowcount


class SQLiteAlerts:
    """Mixed into ``SQLiteStore``: the ``AlertStore`` methods on the store's own runner."""

    if TYPE_CHECKING:
        _run: _Runner

    async def record_alert(self, alert: Alert) -> bool:
        return await self._run.write(record_alert, alert)

    async def get_alert(self, tenant: str, alert_id: str) -> Alert | None:
        return await self._run.read(get_alert, tenant, alert_id)

    async def list_alerts(self, tenant: str) -> list[Alert]:
        return await self._run.read(list_alerts, tenant)

    async def pending_alerts(self, limit: int = 100) -> list[Alert]:
        return await self._run.read(pending_alerts, limit)

    async def claim_alert(
        self, tenant: str, alert_id: str, attempts: int, claimed_at: str, stale_before: str
    ) -> Alert | None:
        return await self._run.write(claim_alert, tenant, alert_id, attempts, claimed_at, stale_before)

    async def finish_alert(
        self, tenant: str, alert_id: str, attempts: int, state: str, delivered: tuple[str, ...], error: str
    ) -> bool:
        return await self._run.write(finish_alert, tenant, alert_id, attempts, state, delivered, error)

    async def sweep_alerts(self, now: str) -> int:
        return await self._run.write(drop_expired, sweep_floor(parse_time(now), EXPIRY_MARGIN))
