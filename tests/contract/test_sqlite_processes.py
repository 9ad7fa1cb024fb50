"""Several OS processes on one SQLite file: budgets never pass capacity, one audit chain stays whole.

Workers are spawned (fresh interpreters, no shared state but the file), wait on a barrier so that they
really contend, and report back through a queue; every wait is bounded. At the end, what only SQLite has:
a writer waiting for the file lock, the schema version and WAL mode, closing.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from tollgate import audit
from tollgate.store import sqlite_inline
from tollgate.store.base import Overdrawn
from tollgate.store.sqlite import SQLiteStore, StoreClosed
from tollgate.store.sqlite_schema import RESERVATIONS_TABLE, SCHEMA_VERSION

from .test_store_contract import at, draft

PROCESSES = 4
RESERVATIONS_EACH = 12
APPENDS_EACH = 15
CAPACITY = 70
EACH = 10  # 7 of the 48 reservations fit
KEY = b"process-key"
TIMEOUT = 120.0


async def _reserve_many(path: str, worker: int) -> list[str]:
    store = SQLiteStore(path, threads=4)
    try:
        await store.init_schema()  # concurrent, idempotent

        async def one(n: int) -> str | None:
            rid = f"w{worker}-{n}"
            try:
                await store.reserve("acme", "p", rid, EACH, at(n))
            except Overdrawn:
                return None
            return rid

        admitted = await asyncio.gather(*(one(n) for n in range(RESERVATIONS_EACH)))
        return [rid for rid in admitted if rid is not None]
    finally:
        await store.aclose()


async def _append_many(path: str, worker: int) -> list[int]:
    store = SQLiteStore(path, threads=4)
    try:
        drafts = (draft("acme", worker * 100 + n) for n in range(APPENDS_EACH))
        written = await asyncio.gather(*(audit.append(store, d, KEY) for d in drafts))
        return [entry.seq for entry in written]
    finally:
        await store.aclose()


def _reserve_worker(path: str, worker: int, barrier: Barrier, results: Any) -> None:
    _report(results, lambda: asyncio.run(_reserve_many(path, worker)), barrier)


def _append_worker(path: str, worker: int, barrier: Barrier, results: Any) -> None:
    _report(results, lambda: asyncio.run(_append_many(path, worker)), barrier)


def _report(results: Any, work: Callable[[], Any], barrier: Barrier) -> None:
    try:
        barrier.wait(timeout=TIMEOUT)
        results.put(("ok", work()))
    except BaseException as exc:
        results.put(("error", repr(exc)))


def run_workers(target: Callable[..., None], path: Path) -> list[Any]:
    """Start PROCESSES spawned workers on ``path``; their results (any error fails the test)."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    processes = [
        ctx.Process(target=target, args=(str(path), n, barrier, results), daemon=True)
        for n in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    try:
        reports = _collect(results, processes)
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
    errors = [detail for status, detail in reports if status != "ok"]
    assert not errors, errors
    return [detail for _, detail in reports]


def _collect(results: Any, processes: list[Any]) -> list[tuple[str, Any]]:
    """One report per process, failing fast when a process died without reporting."""
    reports: list[tuple[str, Any]] = []
    deadline = time.monotonic() + TIMEOUT
    while len(reports) < len(processes):
        try:
            reports.append(results.get(timeout=0.5))
        except queue.Empty:
            dead = [p.exitcode for p in processes if not p.is_alive()]
            if len(dead) > len(reports) and results.empty():
                raise AssertionError(f"a worker died without reporting (exit codes {dead})") from None
            assert time.monotonic() < deadline, "workers timed out"
    return reports


async def _prepared(path: Path, capacity: int | None = None) -> None:
    store = SQLiteStore(str(path))
    try:
        await store.init_schema()
        if capacity is not None:
            await store.set_capacity("acme", "p", capacity)
    finally:
        await store.aclose()


def test_processes_never_reserve_past_capacity(tmp_path: Path) -> None:
    path = tmp_path / "tollgate.db"
    asyncio.run(_prepared(path, CAPACITY))
    admitted = [rid for ids in run_workers(_reserve_worker, path) for rid in ids]
    assert len(admitted) == CAPACITY // EACH

    async def check() -> None:
        store = SQLiteStore(str(path))
        try:
            pool = await store.get_pool("acme", "p")
            assert pool is not None and pool.used == 0
            assert pool.reserved == len(admitted) * EACH <= CAPACITY
            assert set(pool.reservations) == set(admitted)
        finally:
            await store.aclose()

    asyncio.run(check())


def test_processes_rebuilding_an_older_holds_table_at_once_keep_its_hold_and_the_capacity(
    tmp_path: Path,
) -> None:
    """Every worker's ``init_schema`` finds the holds table of an older file (with rowids and a time index)
    at the same moment; one rebuilds it, the others find it rebuilt, and the reservations stay exact."""
    path = tmp_path / "tollgate.db"
    asyncio.run(_prepared(path, CAPACITY))
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE reservations")
        conn.execute(RESERVATIONS_TABLE.replace("WITHOUT ROWID", ""))  # the same table, with rowids
        conn.execute("CREATE INDEX reservations_by_time ON reservations (at)")
        conn.execute(f"INSERT INTO reservations (tenant, pool, reservation_id, tokens, at) "
                     f"VALUES ('acme', 'p', 'older', {EACH}, '{at(0)}')")  # fmt: skip
        conn.execute("UPDATE pools SET reserved = ? WHERE tenant = 'acme' AND pool = 'p'", (EACH,))
    conn.close()
    admitted = [rid for ids in run_workers(_reserve_worker, path) for rid in ids]
    assert len(admitted) == CAPACITY // EACH - 1

    async def check() -> None:
        store = SQLiteStore(str(path))
        try:
            pool = await store.get_pool("acme", "p")
            assert pool is not None and pool.reserved == CAPACITY
            assert set(pool.reservations) == {"older", *admitted}
        finally:
            await store.aclose()

    asyncio.run(check())
    with sqlite3.connect(path) as conn:
        tables = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE name LIKE 'reservations%'"))
    conn.close()
    assert set(tables) == {"reservations"} and "WITHOUT ROWID" in tables["reservations"]


def test_processes_append_one_verified_chain(tmp_path: Path) -> None:
    path = tmp_path / "tollgate.db"
    asyncio.run(_prepared(path))
    seqs = sorted(seq for worker in run_workers(_append_worker, path) for seq in worker)
    total = PROCESSES * APPENDS_EACH
    assert seqs == list(range(1, total + 1))

    async def check() -> None:
        store = SQLiteStore(str(path))
        try:
            entries = await store.list_audit("acme")
            assert len({e.request_id for e in entries}) == total
            result = await audit.verify(store, "acme", KEY)
            assert (result.valid, result.entries, result.head_seq) == (True, total, total)
        finally:
            await store.aclose()

    asyncio.run(check())


# ------------------------------------------------------------------ SQLite specifics, in this process


async def test_a_writer_waiting_for_the_file_lock_never_blocks_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "tollgate.db"
    await _prepared(path, CAPACITY)
    store = SQLiteStore(str(path))
    other = sqlite3.connect(path, isolation_level=None)  # another process, as far as SQLite can tell
    try:
        other.execute("BEGIN IMMEDIATE")
        waiting = asyncio.create_task(store.reserve("acme", "p", "r1", EACH, at(1)))
        started = time.monotonic()
        for _ in range(10):
            await asyncio.sleep(0.02)
        assert time.monotonic() - started < 1.0 and not waiting.done()
        other.execute("COMMIT")
        pool = await asyncio.wait_for(waiting, TIMEOUT)
        assert pool.reservations == {"r1": (EACH, at(1))}
        assert any(t.name.startswith("tollgate-sqlite") for t in threading.enumerate())
    finally:
        other.close()
        await store.aclose()


async def test_schema_is_versioned_idempotent_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "tollgate.db"
    for _ in range(2):
        await _prepared(path)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


async def test_a_closed_store_refuses_calls(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "tollgate.db"))
    await store.init_schema()
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(StoreClosed):
        await store.any_keys()


def _workers(store: SQLiteStore) -> int:
    return len(store._run._executor._threads)  # the pool's threads, started on first use


async def test_per_request_writes_skip_the_pool_when_they_can_start_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_inline, "CHECKPOINT_EVERY", 1000)
    path = tmp_path / "tollgate.db"
    await _prepared(path, CAPACITY)
    store = SQLiteStore(str(path))
    hops: list[str] = []
    submit = store._run._submit

    async def counted(call: Callable[[], Any]) -> Any:
        hops.append("hop")
        return await submit(call)

    monkeypatch.setattr(store._run, "_submit", counted)
    writer = audit.AuditWriter(store, KEY)
    try:
        await writer.append(draft(n=0))  # opens this writer's segment (reads the registry's head once)
        hops.clear()
        await store.reserve("acme", "p", "r1", EACH, at(1))
        await store.settle("acme", "p", "r1", 3)
        link = await writer.append(draft(n=1))
        assert hops == []  # reserve, settle, the link and its head: all on the loop's thread
        pool = await store.get_pool("acme", "p")  # a read goes to the pool as before
        assert pool is not None and (pool.used, pool.reserved) == (3, 0) and hops == ["hop"]
        assert (await store.get_audit_entry("acme", link.seq, segment=link.segment)) == link

        store._run._write_lock.acquire()  # another thread of this process is writing: to the pool, waiting
        waiting = asyncio.create_task(store.reserve("acme", "p", "r2", EACH, at(2)))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        store._run._write_lock.release()
        assert "r2" in (await asyncio.wait_for(waiting, TIMEOUT)).reservations
        assert hops[-1] == "hop"
    finally:
        await store.aclose()


async def test_writes_on_the_loop_hand_a_checkpoint_to_the_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_inline, "CHECKPOINT_EVERY", 3)
    path = tmp_path / "tollgate.db"
    await _prepared(path, CAPACITY)
    store = SQLiteStore(str(path))
    try:
        for n in range(2):
            await store.reserve("acme", "p", f"r{n}", 1, at(n))
        assert _workers(store) == 0
        await store.reserve("acme", "p", "r2", 1, at(2))
        assert _workers(store) == 1  # the third commit: a passive checkpoint on a worker
    finally:
        await store.aclose()
    conn = sqlite3.connect(path)
    try:  # everything is in the file after the WAL is gone
        assert conn.execute("SELECT COUNT(*) FROM reservations").fetchone()[0] == 3
    finally:
        conn.close()
