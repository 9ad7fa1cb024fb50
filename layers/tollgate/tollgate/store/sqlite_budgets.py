"""USD budgets on SQLite (``budget_records.UsdBudgetStore``): the tables and the statements.

Every write runs inside the store's ``BEGIN IMMEDIATE`` transaction (``sqlite.SQLiteStore``), so each
check-then-update is atomic across threads and processes sharing the file. ``SQLiteBudgets`` is mixed into
``SQLiteStore``; the statements are plain functions of a connection, like ``sqlite_ops``.

The sweep reads holds by time (the holds in flight: a small table, read whole), never counters, and then
deletes the expired counters (and any markers left in them): those whose period key sorts below
``budget_records.sweep_floor`` (an ``all`` counter never does), so the tables stay bounded however long the
history.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from ..timeutil import parse_time
from .base import Overdrawn
from .budget_records import BudgetRule, UsdCounter, UsdReservation, sweep_floor, sweep_margin
from .sqlite_schema import lean_holds

P = ParamSpec("P")
T = TypeVar("T")

# like ``reservations`` (``sqlite_schema.lean_holds``): one b-tree entry per hold in flight, no time index
USD_RESERVATIONS_TABLE = """CREATE TABLE IF NOT EXISTS usd_reservations (
        tenant TEXT NOT NULL, budget TEXT NOT NULL, period TEXT NOT NULL, reservation_id TEXT NOT NULL,
        amount INTEGER NOT NULL, at TEXT NOT NULL,
        PRIMARY KEY (tenant, budget, period, reservation_id)) WITHOUT ROWID"""
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS budget_rules (
        tenant TEXT NOT NULL, scope TEXT NOT NULL, name TEXT NOT NULL,
        usd_limit INTEGER, period TEXT NOT NULL, timezone TEXT NOT NULL, alert_at TEXT NOT NULL,
        PRIMARY KEY (tenant, scope, name))""",
    """CREATE TABLE IF NOT EXISTS usd_counters (
        tenant TEXT NOT NULL, budget TEXT NOT NULL, period TEXT NOT NULL,
        used INTEGER NOT NULL DEFAULT 0, reserved INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant, budget, period))""",
    USD_RESERVATIONS_TABLE,
    """CREATE TABLE IF NOT EXISTS usd_swept (
        tenant TEXT NOT NULL, budget TEXT NOT NULL, period TEXT NOT NULL, reservation_id TEXT NOT NULL,
        amount INTEGER NOT NULL, at TEXT NOT NULL,
        PRIMARY KEY (tenant, budget, period, reservation_id))""",
    "CREATE INDEX IF NOT EXISTS usd_swept_by_time ON usd_swept (at)",
)
_RULE_COLUMNS = "tenant, scope, name, usd_limit, period, timezone, alert_at"
CounterKey = tuple[str, str, str]  # tenant, budget, period


def create_budget_schema(conn: sqlite3.Connection) -> None:
    for statement in SCHEMA:
        conn.execute(statement)
    lean_holds(conn, "usd_reservations", USD_RESERVATIONS_TABLE, "usd_reservations_by_time")


def _rule(row: tuple[Any, ...]) -> BudgetRule:
    tenant, scope, name, limit, period, timezone, alert_at = row
    alerts = tuple(int(a) for a in json.loads(alert_at))
    return BudgetRule(tenant, scope, name, None if limit is None else int(limit), period, timezone, alerts)


def put_rule(conn: sqlite3.Connection, rule: BudgetRule) -> None:
    conn.execute(
        f"INSERT OR REPLACE INTO budget_rules ({_RULE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        (
            rule.tenant,
            rule.scope,
            rule.name,
            rule.usd_limit,
            rule.period,
            rule.timezone,
            json.dumps(list(rule.alert_at)),
        ),
    )


def get_rules(conn: sqlite3.Connection, tenant: str, budget_ids: list[str]) -> list[BudgetRule]:
    query = f"SELECT {_RULE_COLUMNS} FROM budget_rules WHERE tenant = ? AND scope = ? AND name = ?"  # noqa: S608
    found: list[BudgetRule] = []
    for budget in dict.fromkeys(budget_ids):
        scope, _, name = budget.partition(":")
        found += [_rule(row) for row in conn.execute(query, (tenant, scope, name))]
    return found


def list_rules(conn: sqlite3.Connection, tenant: str | None) -> list[BudgetRule]:
    query = (
        f"SELECT {_RULE_COLUMNS} FROM budget_rules WHERE ? IS NULL OR tenant = ? "  # noqa: S608
        "ORDER BY tenant, scope, name"
    )
    return [_rule(row) for row in conn.execute(query, (tenant, tenant))]


def get_counter(conn: sqlite3.Connection, key: CounterKey) -> UsdCounter | None:
    where = "WHERE tenant = ? AND budget = ? AND period = ?"
    row = conn.execute(f"SELECT used, reserved FROM usd_counters {where}", key).fetchone()  # noqa: S608
    if row is None:
        return None
    held = conn.execute(f"SELECT reservation_id, amount, at FROM usd_reservations {where}", key)  # noqa: S608
    marks = conn.execute(f"SELECT reservation_id, amount, at FROM usd_swept {where}", key)  # noqa: S608
    return UsdCounter(
        *key,
        used=int(row[0]),
        reserved=int(row[1]),
        reservations={rid: (int(amount), at) for rid, amount, at in held},
        swept={rid: (int(amount), at) for rid, amount, at in marks},
    )


def _counter(conn: sqlite3.Connection, key: CounterKey) -> UsdCounter:
    found = get_counter(conn, key)
    assert found is not None, "the counter was written in this transaction"
    return found


def _one(conn: sqlite3.Connection, table: str, key: CounterKey, rid: str) -> int | None:
    assert table in ("usd_reservations", "usd_swept")
    row = conn.execute(
        f"SELECT amount FROM {table} WHERE tenant = ? AND budget = ? AND period = ? "  # noqa: S608
        "AND reservation_id = ?",
        (*key, rid),
    ).fetchone()
    return None if row is None else int(row[0])


def reserve(
    conn: sqlite3.Connection, key: CounterKey, reservation: tuple[str, int, str], limit: int
) -> UsdCounter:
    rid, amount, at = reservation
    conn.execute("INSERT OR IGNORE INTO usd_counters (tenant, budget, period) VALUES (?, ?, ?)", key)
    if _one(conn, "usd_reservations", key, rid) is not None:
        return _counter(conn, key)
    cursor = conn.execute(
        "UPDATE usd_counters SET reserved = reserved + ? "
        "WHERE tenant = ? AND budget = ? AND period = ? AND used + reserved + ? <= ?",
        (int(amount), *key, int(amount), int(limit)),
    )
    if cursor.rowcount == 0:
        found = _counter(conn, key)
        raise Overdrawn(max(0, int(limit) - found.used - found.reserved))
    conn.execute(
        "INSERT INTO usd_reservations (tenant, budget, period, reservation_id, amount, at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (*key, rid, int(amount), at),
    )
    return _counter(conn, key)


_DELETE = "DELETE FROM {} WHERE tenant = ? AND budget = ? AND period = ? AND reservation_id = ?"
_CHARGE = (
    "UPDATE usd_counters SET reserved = reserved - ?, used = used + ? "
    "WHERE tenant = ? AND budget = ? AND period = ?"
)


def settle(conn: sqlite3.Connection, key: CounterKey, rid: str, actual: int) -> UsdCounter | None:
    amount = _one(conn, "usd_reservations", key, rid)
    if amount is not None:
        conn.execute(_DELETE.format("usd_reservations"), (*key, rid))
        conn.execute(_CHARGE, (amount, int(actual), *key))
        return _counter(conn, key)
    charged = _one(conn, "usd_swept", key, rid)
    if charged is None:
        return None
    conn.execute(_DELETE.format("usd_swept"), (*key, rid))
    conn.execute(_CHARGE, (0, int(actual) - charged, *key))
    return _counter(conn, key)


def old_reservations(conn: sqlite3.Connection, older_than: str) -> list[UsdReservation]:
    rows = conn.execute(
        "SELECT tenant, budget, period, reservation_id, amount, at FROM usd_reservations "
        "WHERE at < ? ORDER BY at",
        (older_than,),
    )
    return [UsdReservation(t, b, p, r, int(amount), at) for t, b, p, r, amount, at in rows]


def sweep_one(conn: sqlite3.Connection, held: UsdReservation, at: str) -> bool:
    key = (held.tenant, held.budget_id, held.period_key)
    if _one(conn, "usd_reservations", key, held.reservation_id) != held.amount:
        return False
    conn.execute(_DELETE.format("usd_reservations"), (*key, held.reservation_id))
    conn.execute(_CHARGE, (held.amount, held.amount, *key))
    conn.execute(
        "INSERT OR REPLACE INTO usd_swept (tenant, budget, period, reservation_id, amount, at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (*key, held.reservation_id, held.amount, at),
    )
    return True


def drop_markers(conn: sqlite3.Connection, older_than: str) -> int:
    return conn.execute("DELETE FROM usd_swept WHERE at < ?", (older_than,)).rowcount


def drop_expired(conn: sqlite3.Connection, floor: str) -> int:
    """Delete the counters (and what is left in them) whose period key sorts below ``floor``."""
    for table in ("usd_reservations", "usd_swept"):
        conn.execute(f"DELETE FROM {table} WHERE period < ?", (floor,))  # noqa: S608 - a fixed table name
    return conn.execute("DELETE FROM usd_counters WHERE period < ?", (floor,)).rowcount


class _Run(Protocol):
    async def quick_write(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T: ...

    async def write(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T: ...

    async def read(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T: ...


class SQLiteBudgets:
    """``UsdBudgetStore`` for ``SQLiteStore`` (which provides ``_run``)."""

    _run: _Run

    async def put_budget_rule(self, rule: BudgetRule) -> None:
        await self._run.write(put_rule, rule)

    async def get_budget_rules(self, tenant: str, budget_ids: list[str]) -> list[BudgetRule]:
        return await self._run.read(get_rules, tenant, budget_ids)

    async def list_budget_rules(self, tenant: str | None = None) -> list[BudgetRule]:
        return await self._run.read(list_rules, tenant)

    async def reserve_usd(
        self, tenant: str, budget: str, period_key: str, reservation: tuple[str, int, str], limit: int
    ) -> UsdCounter:
        return await self._run.quick_write(reserve, (tenant, budget, period_key), reservation, limit)

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
        return await self._run.quick_write(settle, (tenant, budget, period_key), reservation_id, actual)

    async def get_usd_counter(self, tenant: str, budget: str, period_key: str) -> UsdCounter | None:
        return await self._run.read(get_counter, (tenant, budget, period_key))

    async def sweep_usd_reservations(self, older_than: str, at: str) -> list[UsdReservation]:
        await self._run.write(drop_markers, older_than)  # first: this sweep's own markers stay
        swept: list[UsdReservation] = []
        for held in await self._run.read(old_reservations, older_than):
            if await self._run.write(sweep_one, held, at):
                swept.append(held)
        now = parse_time(at)
        await self._run.write(drop_expired, sweep_floor(now, sweep_margin(parse_time(older_than), now)))
        return swept
