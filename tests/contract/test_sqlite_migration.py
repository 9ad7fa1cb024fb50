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


def _written(path: Path, statements: tuple[str, ...]) -> None:
    """A file as an older tollgate left it."""
    with sqlite3.connect(path) as conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()


async def test_a_version_1_file_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _written(path, VERSION_1)
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
    _written(path, ROLLUPS_BEFORE_TOKEN_PARTS)
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


HOLDS_WITH_ROWIDS = (  # the holds tables as tollgate wrote them before the sixth performance pass
    """CREATE TABLE pools (tenant TEXT NOT NULL, pool TEXT NOT NULL, capacity INTEGER,
       used INTEGER NOT NULL DEFAULT 0, reserved INTEGER NOT NULL DEFAULT 0,
       anon_reserved INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (tenant, pool))""",
    """CREATE TABLE reservations (tenant TEXT NOT NULL, pool TEXT NOT NULL, reservation_id TEXT NOT NULL,
       tokens INTEGER NOT NULL, at TEXT NOT NULL, key_id TEXT NOT NULL DEFAULT '',
       provider TEXT NOT NULL DEFAULT '', model TEXT NOT NULL DEFAULT '',
       PRIMARY KEY (tenant, pool, reservation_id))""",
    "CREATE INDEX reservations_by_time ON reservations (at)",
    """CREATE TABLE usd_counters (tenant TEXT NOT NULL, budget TEXT NOT NULL, period TEXT NOT NULL,
       used INTEGER NOT NULL DEFAULT 0, reserved INTEGER NOT NULL DEFAULT 0,
       PRIMARY KEY (tenant, budget, period))""",
    """CREATE TABLE usd_reservations (tenant TEXT NOT NULL, budget TEXT NOT NULL, period TEXT NOT NULL,
       reservation_id TEXT NOT NULL, amount INTEGER NOT NULL, at TEXT NOT NULL,
       PRIMARY KEY (tenant, budget, period, reservation_id))""",
    "CREATE INDEX usd_reservations_by_time ON usd_reservations (at)",
    "INSERT INTO pools (tenant, pool, capacity, reserved) VALUES ('acme', 'team', 1000, 150)",
    f"INSERT INTO reservations VALUES ('acme', 'team', 'in-flight', 100, '{at(1)}', 'k1', 'openai', 'm')",
    f"INSERT INTO reservations VALUES ('acme', 'team', 'stuck', 50, '{at(2)}', 'k2', 'openai', 'm')",
    "INSERT INTO usd_counters (tenant, budget, period, reserved) VALUES ('acme', 'tenant', 'all', 700)",
    f"INSERT INTO usd_reservations VALUES ('acme', 'tenant', 'all', 'in-flight', 300, '{at(1)}')",
    f"INSERT INTO usd_reservations VALUES ('acme', 'tenant', 'all', 'stuck', 400, '{at(2)}')",
    "PRAGMA user_version = 3",
)


def _layout(path: Path) -> dict[str, str]:
    """Each holds table's and time index's SQL, as the file has it."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE name LIKE '%reservations%' ORDER BY name"
        ).fetchall()
    conn.close()
    return {str(name): str(sql) for name, sql in rows}


async def test_holds_tables_with_rowids_are_rebuilt_without_them_and_keep_what_is_in_flight(
    tmp_path: Path,
) -> None:
    path = tmp_path / "holds.db"
    _written(path, HOLDS_WITH_ROWIDS)
    store = SQLiteStore(str(path))
    try:
        await store.init_schema()
        layout = _layout(path)
        assert set(layout) == {"reservations", "usd_reservations"}  # the time indexes are gone
        assert all("WITHOUT ROWID" in sql for sql in layout.values())
        await store.init_schema()  # idempotent
        assert _layout(path) == layout
        pool = await store.get_pool("acme", "team")
        assert pool is not None and pool.reservations == {"in-flight": (100, at(1)), "stuck": (50, at(2))}
        assert pool.holders["stuck"] == Holder("k2", "openai", "m")
        # the sweep finds the old holds without the time index, and a settle finds its hold
        assert [r.reservation_id for r in await store.sweep_reservations(at(2), at(9))] == ["in-flight"]
        assert [r.reservation_id for r in await store.sweep_usd_reservations(at(2), at(9))] == ["in-flight"]
        settled = await store.settle("acme", "team", "stuck", 20)
        assert settled is not None and (settled.used, settled.reserved) == (100 + 20, 0)
        counter = await store.settle_usd("acme", "tenant", "all", "stuck", 250)
        assert counter is not None and (counter.used, counter.reserved) == (300 + 250, 0)
    finally:
        await store.aclose()


async def test_an_older_tollgates_time_index_on_the_new_table_works_and_goes_again(tmp_path: Path) -> None:
    path = tmp_path / "rollback.db"
    store = SQLiteStore(str(path))
    try:
        await store.init_schema()
    finally:
        await store.aclose()
    with sqlite3.connect(path) as conn:  # what an older tollgate's schema step runs on this file
        conn.execute("CREATE INDEX IF NOT EXISTS reservations_by_time ON reservations (at)")
        conn.execute("INSERT INTO pools (tenant, pool, capacity, reserved) VALUES ('acme', 'team', 100, 5)")
        conn.execute(f"INSERT INTO reservations (tenant, pool, reservation_id, tokens, at) "
                     f"VALUES ('acme', 'team', 'r1', 5, '{at(1)}')")  # fmt: skip
    conn.close()
    assert "reservations_by_time" in _layout(path)
    store = SQLiteStore(str(path))
    try:
        await store.init_schema()
        assert "reservations_by_time" not in _layout(path)
        [swept] = await store.sweep_reservations(at(5), at(9))
        assert (swept.reservation_id, swept.tokens) == ("r1", 5)
        pool = await store.get_pool("acme", "team")
        assert pool is not None and (pool.used, pool.reserved) == (5, 0)
    finally:
        await store.aclose()


async def test_sweep_markers_from_before_they_kept_their_key_still_settle(tmp_path: Path) -> None:
    """An older ``swept`` table gains ``key_id``; its markers name nobody, so any of the pool's keys may
    still report them, as before; new markers keep their holder's key."""
    path = tmp_path / "old.db"
    older_swept = (
        """CREATE TABLE swept (tenant TEXT NOT NULL, pool TEXT NOT NULL, reservation_id TEXT NOT NULL,
           tokens INTEGER NOT NULL, at TEXT NOT NULL, PRIMARY KEY (tenant, pool, reservation_id))""",
        f"INSERT INTO swept VALUES ('acme', 'team', 'tok_old', 50, '{at(2)}')",
    )
    _written(path, VERSION_1 + older_swept)
    store = SQLiteStore(str(path))
    try:
        await store.init_schema()
        pool = await store.get_pool("acme", "team")
        assert pool is not None and pool.swept == {"tok_old": (50, at(2))} and "tok_old" not in pool.holders
        await store.reserve("acme", "team", "tok_new", 10, at(3), Holder("key_a", "hoosh", "team"))
        await store.sweep_reservations(at(10), at(20))
        pool = await store.get_pool("acme", "team")
        assert pool is not None and pool.holders["tok_new"].key_id == "key_a"
    finally:
        await store.aclose()
