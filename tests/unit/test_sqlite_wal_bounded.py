"""Issue 14: under a steady stream of per-request writes the SQLite WAL is restarted after each checkpoint
instead of growing for ever (it grew ~53 KB per request under ``tollgate serve`` at c=16, and the
gateway's RSS with it, ~0.5 MB per 1,000 requests). A passive checkpoint can only copy the whole WAL, and so
let the next writer start it afresh, when no commit lands while it runs: it holds the process's write lock."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from tollgate.store import sqlite as sqlite_store
from tollgate.store import sqlite_inline
from tollgate.store.sqlite import SQLiteStore

PAGE = 4096
FRAME_HEADER = 24
WAL_HEADER = 32


def wal_frames(db: Path) -> int:
    wal = db.with_name(db.name + "-wal")
    size = wal.stat().st_size if wal.exists() else 0
    return max(0, size - WAL_HEADER) // (PAGE + FRAME_HEADER)


async def _store(db: Path) -> SQLiteStore:
    store = SQLiteStore(str(db))
    await store.init_schema()
    await store.create_pool("t", "p")
    await store.set_capacity("t", "p", 10**12)
    return store


async def test_no_quick_write_lands_while_a_checkpoint_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await _store(tmp_path / "wal.db")
    runner = store._run
    during: list[bool] = []
    real = sqlite_store.checkpoint

    def checkpoint(conn: sqlite3.Connection) -> None:
        during.append(runner._write_lock.locked())
        real(conn)

    monkeypatch.setattr(sqlite_store, "checkpoint", checkpoint)
    try:
        for _ in range(3 * sqlite_inline.CHECKPOINT_EVERY):
            await store.settle_anonymous("t", "p", 10, 5)
    finally:
        await store.aclose()  # waits for the checkpoints handed to the pool
    assert during  # (writes that found the lock taken went to the pool: they count no inline commit)
    assert all(during)


async def test_the_wal_stays_bounded_under_steady_load(tmp_path: Path) -> None:
    db = tmp_path / "wal.db"
    store = await _store(db)
    workers, each = 16, 2 * sqlite_inline.CHECKPOINT_EVERY
    try:

        async def client(n: int) -> None:  # as under load: a read on the pool, then quick (inline) writes
            for i in range(each):
                assert await store.get_pool("t", "p") is not None
                await store.reserve("t", "p", f"r{n}-{i}", 10, "2026-01-01T00:00:00Z")
                await store.settle("t", "p", f"r{n}-{i}", 5)

        await asyncio.gather(*(client(n) for n in range(workers)))
        frames = wal_frames(db)
    finally:
        await store.aclose()
    # every commit writes at least one frame (these ~4): a WAL never restarted holds > 2 * workers * each
    # frames (~128,000 before the fix); restarted after each checkpoint it holds a few checkpoints' worth
    # (~2,600 on a quiet machine; the file keeps its largest size). A restart waits until no reader still
    # uses the WAL, so on a loaded machine (CI runs two suites side by side) it comes later: 8,000 frames
    # were seen there. The bound is one frame per commit: 4x below a WAL that is never restarted.
    commits = 2 * workers * each
    assert frames < commits, frames


async def test_writes_meanwhile_wait_for_the_checkpoint_on_the_loop_not_on_the_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint syncs the files (~ms) under the write lock: the per-request writes that arrive meanwhile
    wait for it on the loop and then run there, instead of each taking a thread hop to the pool."""
    monkeypatch.setattr(sqlite_inline, "CHECKPOINT_EVERY", 3)
    store = await _store(tmp_path / "wal.db")
    runner = store._run
    hops: list[str] = []
    submit = runner._submit

    async def counted(call: Any) -> Any:
        hops.append("hop")
        return await submit(call)

    monkeypatch.setattr(runner, "_submit", counted)
    started, release = threading.Event(), threading.Event()
    real = sqlite_store.checkpoint

    def slow_checkpoint(conn: sqlite3.Connection) -> None:
        started.set()
        release.wait(10)
        real(conn)

    monkeypatch.setattr(sqlite_store, "checkpoint", slow_checkpoint)
    try:
        for n in range(3):  # the third commit hands a checkpoint to the pool
            await store.reserve("t", "p", f"r{n}", 1, "2026-01-01T00:00:00Z")
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
        assert runner._write_lock.locked()
        waiting = [asyncio.create_task(store.settle("t", "p", f"r{n}", 1)) for n in range(3)]
        await asyncio.sleep(0)
        assert not any(task.done() for task in waiting)  # the lock is held: nothing could be written
        release.set()
        settled = await asyncio.gather(*waiting)
        assert [pool is not None for pool in settled] == [True] * 3
        assert hops == []  # all three on the loop, after the checkpoint
        final = await store.get_pool("t", "p")
        assert final is not None and (final.used, final.reserved) == (3, 0)
    finally:
        release.set()
        await store.aclose()
