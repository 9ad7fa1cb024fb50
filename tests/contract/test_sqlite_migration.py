"""A SQLite file written by the previous schema (version 1) is migrated in place by ``init_schema``:
keys gain ``pools``, reservations their holder, and the ``swept`` markers a table; nothing is lost."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

from tollgate.store.base import Holder, Pool
from tollgate.store.rollup_base import Rollup
from tollgate.store.sqlite import SQLiteStore
from tollgate.store.sqlite_schema import SCHEMA_VERSION

from .test_store_contract import at

VERSION_1 = (
    """CREATE TABLE keys (key_id TEXT PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE, tenant TEXT NOT NULL,
       name TEXT, models TEXT, pool TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT,
       revoked_at TEXT)""",
    """CREATE TABLE pools (tenant TEXT NOT NULL, pool TEXT NOT NULL, capacity INTEGER,
       used INTEGER NOT NULL DEFAULT 0, reserved INTEGER NOT NULL DEFAULT 0,
       anon_reserved INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (tenant, pool))""",
    """CREATE TABLE reservations (tenant TEXT NOT NULL, pool TEXT NOT NULL, reservation_id TEXT NOT NULL,
       tokens INTEGER NOT NULL, at TEXT NOT NULL, PRIMARY KEY (tenant, pool, reservation_id))""",
    "INSERT INTO keys VALUES ('key_1', 'hash-1', 'acme', NULL, NULL, 'team', '2026-01-01', NULL, NULL)",
    "INSERT INTO pools (tenant, pool, capacity, reserved) VALUES ('acme', 'team', 1000, 100)",
    f"INSERT INTO reservations VALUES ('acme', 'team', 'old-request', 100, '{at(1)}')",
    "PRAGMA user_version = 1",
)


async def test_a_version_1_file_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        for statement in VERSION_1:
            conn.execute(statement)
    conn.close()
    store = SQLiteStore(str(path))
    try:
        await store.init_schema()
        await store.init_schema()  # idempotent
        key = await store.key_by_hash("hash-1")
        assert key is not None and key.pool == "team" and key.pools == ()
        pool = await store.get_pool("acme", "team")
        assert pool == Pool("acme", "team", 1000, 0, 100, {"old-request": (100, at(1))})
        assert pool.holders == {"old-request": Holder()}
        (swept,) = await store.sweep_reservations(at(10), at(20))
        assert (swept.reservation_id, swept.tokens, swept.holder) == ("old-request", 100, Holder())
        assert await store.settle("acme", "team", "old-request", 40) == Pool("acme", "team", 1000, 40, 0, {})
    finally:
        await store.aclose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    conn.close()


ROLLUPS_BEFORE_TOKEN_PARTS = (
    """CREATE TABLE cost_rollups (tenant TEXT NOT NULL, day TEXT NOT NULL, key_id TEXT NOT NULL,
       provider TEXT NOT NULL, model TEXT NOT NULL, requests INTEGER NOT NULL DEFAULT 0,
       refused INTEGER NOT NULL DEFAULT 0, prompt_tokens INTEGER NOT NULL DEFAULT 0,
       completion_tokens INTEGER NOT NULL DEFAULT 0, cost_micro_usd INTEGER NOT NULL DEFAULT 0,
       unpriced_requests INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (tenant, day, key_id, provider, model))""",
    "INSERT INTO cost_rollups VALUES ('acme', '2026-11-01', 'k1', 'openai', 'm', 2, 0, 30, 5, 9, 0)",
    "PRAGMA user_version = 3",
)


async def test_rollups_from_before_the_token_parts_gain_them_as_zero(tmp_path: Path) -> None:
    path = tmp_path / "rollups.db"
    with sqlite3.connect(path) as conn:
        for statement in ROLLUPS_BEFORE_TOKEN_PARTS:
            conn.execute(statement)
    conn.close()
    store = SQLiteStore(str(path))
    try:
        await store.init_schema()
        old = Rollup("acme", "2026-11-01", "k1", "openai", "m", 2, 0, 30, 5, 9, 0)
        assert await store.list_rollups("acme") == [old]
        await store.add_rollup(replace(old, requests=1, prompt_tokens=0, completion_tokens=0,
                                       cost_micro_usd=0, reasoning_tokens=6))  # fmt: skip
        [row] = await store.list_rollups("acme")
        assert (row.requests, row.reasoning_tokens, row.cached_tokens) == (3, 6, 0)
    finally:
        await store.aclose()
