"""The statements of the SQLite ``RollupStore`` (one function of a connection each, as ``sqlite_ops``)."""

from __future__ import annotations

import sqlite3

from .rollup_base import CELL_FIELDS, COUNTERS, GROUP_FIELDS, TOKEN_PARTS, Rollup

ROLLUPS_TABLE = """CREATE TABLE IF NOT EXISTS cost_rollups (
        tenant TEXT NOT NULL,
        day TEXT NOT NULL,
        key_id TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        refused INTEGER NOT NULL DEFAULT 0,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        cost_micro_usd INTEGER NOT NULL DEFAULT 0,
        unpriced_requests INTEGER NOT NULL DEFAULT 0,
        cached_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0,
        reasoning_tokens INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant, day, key_id, provider, model)
    )"""

# counters added after the table's first version: a file from before gets them (0) when it opens
ADDED_ROLLUP_COLUMNS = tuple(("cost_rollups", name, "INTEGER NOT NULL DEFAULT 0") for name in TOKEN_PARTS)
_CELL = "tenant, day, key_id, provider, model"
_COLUMNS = f"{_CELL}, {', '.join(COUNTERS)}"
_ADD = ", ".join(f"{c} = {c} + excluded.{c}" for c in COUNTERS)


def add_rollup(conn: sqlite3.Connection, change: Rollup) -> None:
    conn.execute(
        f"INSERT INTO cost_rollups ({_COLUMNS}) VALUES ({', '.join('?' * (5 + len(COUNTERS)))}) "  # noqa: S608
        f"ON CONFLICT ({_CELL}) DO UPDATE SET {_ADD}",
        (*change.cell, *(int(v) for v in change.counts().values())),
    )


def list_rollups(
    conn: sqlite3.Connection, tenant: str | None, since_day: str | None, until_day: str | None
) -> list[Rollup]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM cost_rollups "  # noqa: S608
        "WHERE (? IS NULL OR tenant = ?) AND (? IS NULL OR day >= ?) AND (? IS NULL OR day < ?) "
        f"ORDER BY {_CELL}",
        (tenant, tenant, since_day, since_day, until_day, until_day),
    )
    return [Rollup.of(row[:5], row[5:]) for row in rows]


def rollup_totals(
    conn: sqlite3.Connection,
    tenant: str | None,
    since_day: str | None,
    until_day: str | None,
    group_by: str | None,
) -> list[Rollup]:
    """Summed in SQL, one row per group (the cell fields the group does not keep read "")."""
    keep = GROUP_FIELDS[group_by]
    cell = ", ".join(name if name in keep else f"'' AS {name}" for name in CELL_FIELDS)
    sums = ", ".join(f"COALESCE(SUM({c}), 0)" for c in COUNTERS)
    grouping = f" GROUP BY {', '.join(keep)} ORDER BY {', '.join(keep)}" if keep else ""
    rows = conn.execute(
        f"SELECT {cell}, {sums}, COUNT(*) FROM cost_rollups "  # noqa: S608 (constants)
        "WHERE (? IS NULL OR tenant = ?) AND (? IS NULL OR day >= ?) AND (? IS NULL OR day < ?)" + grouping,
        (tenant, tenant, since_day, since_day, until_day, until_day),
    )
    return [Rollup.of(row[:5], row[5:-1]) for row in rows if row[-1]]  # no rows: no group
