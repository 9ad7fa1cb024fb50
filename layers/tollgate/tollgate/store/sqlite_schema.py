"""The SQLite schema (versioned with ``PRAGMA user_version``) and the row <-> record conversions.

Token counts and money are ``INTEGER`` columns, and every value read back goes through ``int()``: a record
read from SQLite must be equal to (and hash exactly like) the record written, on every store.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from .audit_base import AuditEntry
from .base import ApiKey
from .sqlite_containers import CONTAINERS_TABLE
from .sqlite_limits import LIMIT_TABLES
from .sqlite_rollups import ADDED_ROLLUP_COLUMNS, ROLLUPS_TABLE
from .sqlite_rotation import ROTATION_TABLES

SCHEMA_VERSION = 3
AUDIT_ENTRIES_TABLE = """CREATE TABLE IF NOT EXISTS audit_entries (
        tenant TEXT NOT NULL,
        seq INTEGER NOT NULL,
        at TEXT NOT NULL,
        request_id TEXT NOT NULL,
        key_id TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        status TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cost_micro_usd INTEGER,
        request_sha256 TEXT NOT NULL,
        response_sha256 TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        details TEXT,
        segment TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (tenant, segment, seq)
    )"""
AUDIT_BY_TIME = "CREATE INDEX IF NOT EXISTS audit_by_time ON audit_entries (at)"
AUDIT_HEADS_TABLE = """CREATE TABLE IF NOT EXISTS audit_heads (
        tenant TEXT NOT NULL,
        segment TEXT NOT NULL DEFAULT '',
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        PRIMARY KEY (tenant, segment)
    )"""

_V2_AUDIT_COLUMNS = (
    "tenant, seq, at, request_id, key_id, provider, model, status, prompt_tokens, completion_tokens, "
    "cost_micro_usd, request_sha256, response_sha256, prev_hash, hash, details"
)
# Files written before the audit tables were keyed by segment: rebuilt once, existing rows become the
# legacy segment "" (run when audit_entries exists without a ``segment`` column).
SEGMENT_MIGRATION = (
    "ALTER TABLE audit_entries RENAME TO audit_entries_v2",
    "ALTER TABLE audit_heads RENAME TO audit_heads_v2",
    "DROP INDEX IF EXISTS audit_by_time",
    AUDIT_ENTRIES_TABLE,
    AUDIT_HEADS_TABLE,
    f"INSERT INTO audit_entries ({_V2_AUDIT_COLUMNS}, segment) "  # noqa: S608
    f"SELECT {_V2_AUDIT_COLUMNS}, '' FROM audit_entries_v2",
    "INSERT INTO audit_heads (tenant, segment, seq, hash) SELECT tenant, '', seq, hash FROM audit_heads_v2",
    "DROP TABLE audit_entries_v2",
    "DROP TABLE audit_heads_v2",
    AUDIT_BY_TIME,
)

# The holds of requests in flight: one row per request, written by its reserve and deleted by its settle, so
# the table holds what is in flight (and what the sweep has yet to charge). ``WITHOUT ROWID`` and no index
# on ``at``: a row is one b-tree entry, so a reserve's and a settle's commit each write one page of this
# table to the WAL instead of three (table, primary-key index, time index; ``docs/performance.md``, sixth
# pass). The sweep's ``at < ?`` reads the whole table, which is small.
RESERVATIONS_TABLE = """CREATE TABLE IF NOT EXISTS reservations (
        tenant TEXT NOT NULL,
        pool TEXT NOT NULL,
        reservation_id TEXT NOT NULL,
        tokens INTEGER NOT NULL,
        at TEXT NOT NULL,
        key_id TEXT NOT NULL DEFAULT '',
        provider TEXT NOT NULL DEFAULT '',
        model TEXT NOT NULL DEFAULT '',
        cost_bound INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant, pool, reservation_id)
    ) WITHOUT ROWID"""


def lean_holds(conn: sqlite3.Connection, table: str, create: str, dropped_index: str) -> None:
    """Inside the caller's write transaction: a holds table written before it was ``WITHOUT ROWID`` is
    rebuilt as ``create`` with its rows (it holds only what is in flight, so this is quick), and the time
    index an older tollgate creates on it is dropped. An older tollgate still reads and writes the new
    table (the same columns; it adds its index back, which costs only speed)."""
    row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    if row is not None and "WITHOUT ROWID" not in str(row[0]).upper():
        columns = ", ".join(sorted(_columns(conn, table)))
        conn.execute(f"ALTER TABLE {table} RENAME TO {table}_rowid")
        conn.execute(create)
        conn.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table}_rowid")  # noqa: S608
        conn.execute(f"DROP TABLE {table}_rowid")  # its indexes go with it
    conn.execute(f"DROP INDEX IF EXISTS {dropped_index}")


# budget threshold alerts (``tollgate.alerts``; statements in sqlite_alerts.py)
ALERT_TABLES = (
    """CREATE TABLE IF NOT EXISTS alerts (
        tenant TEXT NOT NULL,
        alert_id TEXT NOT NULL,
        budget_id TEXT NOT NULL,
        period_key TEXT NOT NULL,
        threshold INTEGER NOT NULL,
        budget_limit INTEGER NOT NULL,
        used INTEGER NOT NULL,
        at TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        claimed_at TEXT NOT NULL,
        delivered TEXT NOT NULL,
        error TEXT NOT NULL,
        PRIMARY KEY (tenant, alert_id)
    )""",
    "CREATE INDEX IF NOT EXISTS alerts_by_state ON alerts (state, at)",
)
TABLES = (
    """CREATE TABLE IF NOT EXISTS keys (
        key_id TEXT PRIMARY KEY,
        key_hash TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        name TEXT,
        models TEXT,
        pool TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        revoked_at TEXT,
        pools TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS keys_by_tenant ON keys (tenant, created_at)",
    """CREATE TABLE IF NOT EXISTS pools (
        tenant TEXT NOT NULL,
        pool TEXT NOT NULL,
        capacity INTEGER,
        used INTEGER NOT NULL DEFAULT 0,
        reserved INTEGER NOT NULL DEFAULT 0,
        anon_reserved INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant, pool)
    )""",
    RESERVATIONS_TABLE,
    """CREATE TABLE IF NOT EXISTS swept (
        tenant TEXT NOT NULL,
        pool TEXT NOT NULL,
        reservation_id TEXT NOT NULL,
        tokens INTEGER NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (tenant, pool, reservation_id)
    )""",
    "CREATE INDEX IF NOT EXISTS swept_by_time ON swept (at)",
    """CREATE TABLE IF NOT EXISTS sessions (
        tenant TEXT NOT NULL,
        session_id TEXT NOT NULL,
        messages TEXT NOT NULL,
        version INTEGER NOT NULL,
        expires_at TEXT NOT NULL,
        PRIMARY KEY (tenant, session_id)
    )""",
    "CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires_at)",
    """CREATE TABLE IF NOT EXISTS responses (
        tenant TEXT NOT NULL,
        response_id TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        PRIMARY KEY (tenant, response_id)
    )""",
    "CREATE INDEX IF NOT EXISTS responses_by_expiry ON responses (expires_at)",
    CONTAINERS_TABLE,
    AUDIT_ENTRIES_TABLE,
    AUDIT_BY_TIME,
    AUDIT_HEADS_TABLE,
    ROLLUPS_TABLE,
    *LIMIT_TABLES,
    *ROTATION_TABLES,
    *ALERT_TABLES,
)

KEY_COLUMNS = "key_id, key_hash, tenant, name, models, pool, created_at, expires_at, revoked_at, pools"

# Columns added after version 1: (table, column, definition), added to older files by ``create_schema``.
ADDED_COLUMNS = (
    ("keys", "pools", "TEXT"),
    ("reservations", "key_id", "TEXT NOT NULL DEFAULT ''"),
    ("reservations", "provider", "TEXT NOT NULL DEFAULT ''"),
    ("reservations", "model", "TEXT NOT NULL DEFAULT ''"),
    ("reservations", "cost_bound", "INTEGER NOT NULL DEFAULT 0"),  # what the sweep charges (0 before)
    ("swept", "key_id", "TEXT NOT NULL DEFAULT ''"),  # whose reservation the sweep charged ('' before)
    *ADDED_ROLLUP_COLUMNS,
)
AUDIT_COLUMNS = (
    "tenant, seq, at, request_id, key_id, provider, model, status, prompt_tokens, completion_tokens, "
    "cost_micro_usd, request_sha256, response_sha256, prev_hash, hash, details, segment"
)


class SchemaTooNew(RuntimeError):
    """The file was written by a newer tollgate (its ``user_version`` is higher than ours)."""


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    """The table's column names (empty when it does not exist)."""
    return {str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})")}


def create_schema(conn: sqlite3.Connection) -> None:
    """Inside the caller's write transaction: create what is missing, then record the version."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(f"database schema version {version} is newer than {SCHEMA_VERSION}")
    audit = _columns(conn, "audit_entries")
    if audit and "segment" not in audit:  # a file from before segments: details first, then the rebuild
        if "details" not in audit:
            conn.execute("ALTER TABLE audit_entries ADD COLUMN details TEXT")
        for statement in SEGMENT_MIGRATION:
            conn.execute(statement)
    for statement in TABLES:
        conn.execute(statement)
    for table, column, definition in ADDED_COLUMNS:
        if column not in _columns(conn, table):
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
    lean_holds(conn, "reservations", RESERVATIONS_TABLE, "reservations_by_time")
    if version < SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def key_params(key: ApiKey) -> tuple[Any, ...]:
    models = None if key.models is None else json.dumps(list(key.models))
    return (
        key.key_id,
        key.key_hash,
        key.tenant,
        key.name,
        models,
        key.pool,
        key.created_at,
        key.expires_at,
        key.revoked_at,
        json.dumps(list(key.pools)) if key.pools else None,
    )


def key_from_row(row: Sequence[Any]) -> ApiKey:
    key_id, key_hash, tenant, name, models, pool, created_at, expires_at, revoked_at, pools = row
    return ApiKey(
        key_id=key_id,
        key_hash=key_hash,
        tenant=tenant,
        created_at=created_at,
        name=name,
        models=None if models is None else tuple(str(m) for m in json.loads(models)),
        pool=pool,
        expires_at=expires_at,
        revoked_at=revoked_at,
        pools=() if not pools else tuple(str(p) for p in json.loads(pools)),
    )


def entry_params(entry: AuditEntry) -> tuple[Any, ...]:
    return (
        entry.tenant,
        int(entry.seq),
        entry.at,
        entry.request_id,
        entry.key_id,
        entry.provider,
        entry.model,
        entry.status,
        int(entry.prompt_tokens),
        int(entry.completion_tokens),
        opt_int(entry.cost_micro_usd),
        entry.request_sha256,
        entry.response_sha256,
        entry.prev_hash,
        entry.hash,
        None if not entry.details else json.dumps(entry.details, sort_keys=True),
        entry.segment,
    )


def entry_from_row(row: Sequence[Any]) -> AuditEntry:
    return AuditEntry(
        tenant=row[0],
        seq=int(row[1]),
        at=row[2],
        request_id=row[3],
        key_id=row[4],
        provider=row[5],
        model=row[6],
        status=row[7],
        prompt_tokens=int(row[8]),
        completion_tokens=int(row[9]),
        cost_micro_usd=opt_int(row[10]),
        request_sha256=row[11],
        response_sha256=row[12],
        prev_hash=row[13],
        hash=row[14],
        details=None if row[15] is None else json.loads(row[15]),
        segment=row[16],
    )
