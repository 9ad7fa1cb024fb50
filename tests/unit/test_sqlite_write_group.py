"""Issue 14: the writes a finished request starts side by side (settle, cost rollup, audit link) are one
SQLite transaction, one commit, on the loop's thread (``store/sqlite_group``); a member's error stays its
own, and a write lock held elsewhere sends the group to a worker that waits for it, still one transaction
(a request's settle is never committed apart from its audit entry: a ``kill -9`` between them would leave
a charge unaudited)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.contract.test_cost_rollups import ALICE, ledger_of, request
from tests.contract.test_cost_rollups import KEY as LEDGER_KEY
from tests.contract.test_store_contract import draft
from tollgate import audit, rollups
from tollgate.audit import AuditWriter
from tollgate.providers.base import Usage
from tollgate.store import sqlite_ops
from tollgate.store.sqlite import SQLiteStore
from tollgate.store.sqlite_group import group_writes

KEY = b"k" * 32
TENANT = ALICE.tenant


async def _store(path: Path) -> SQLiteStore:
    store = SQLiteStore(str(path))
    await store.init_schema()
    await store.create_pool(TENANT, "p")
    await store.set_capacity(TENANT, "p", 10**9)
    return store


def _commits(store: SQLiteStore) -> int:
    return store._run._inline._commits


def _hops(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    hops: list[str] = []
    submit = store._run._submit

    async def counted(call: Any) -> Any:
        hops.append("hop")
        return await submit(call)

    monkeypatch.setattr(store._run, "_submit", counted)
    return hops


async def _finish_writes(store: SQLiteStore, writer: AuditWriter, rid: str) -> list[Any]:
    entry = draft(TENANT, 1)
    jobs = asyncio.gather(
        store.settle(TENANT, "p", rid, 7, totals_only=True),
        store.add_rollup(rollups.change_of(entry)),
        writer.append(entry),
        return_exceptions=True,
    )
    group_writes(store)
    return await jobs


async def _one_transaction_on_the_pool(
    store: SQLiteStore, finishing: asyncio.Future[list[Any]], hops: list[str]
) -> None:
    """The finish that waited for the lock: the settle, the rollup and the audit link in one transaction
    on the pool (one hop), not one per member."""
    settled, rollup, link = await asyncio.wait_for(finishing, 10)
    assert hops == ["hop"]
    assert settled is not None and settled.used == 7 and rollup is None
    assert isinstance(link, audit.AuditEntry) and (await audit.verify(store, TENANT, KEY)).valid


async def test_a_request_s_settle_rollup_and_audit_link_are_one_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await _store(tmp_path / "g.db")
    writer = AuditWriter(store, KEY)
    hops = _hops(store, monkeypatch)
    try:
        await writer.append(draft(TENANT, 0))  # opens the writer's segment
        await store.reserve(TENANT, "p", "r1", 50, "2026-01-01T00:00:00Z")
        before, hops[:] = _commits(store), []
        settled, rollup, link = await _finish_writes(store, writer, "r1")
        assert _commits(store) == before + 1 and hops == []
        assert settled is not None and (settled.used, settled.reserved) == (7, 0)
        assert rollup is None and isinstance(link, audit.AuditEntry)
        assert await store.audit_head(TENANT, segment=link.segment) == audit.AuditHead(link.seq, link.hash)
        assert (await store.get_audit_entry(TENANT, link.seq, segment=link.segment)) == link
        assert sum(r.requests for r in await store.list_rollups(TENANT)) == 1
        assert (await audit.verify(store, TENANT, KEY)).valid
    finally:
        await store.aclose()


async def test_a_member_that_fails_fails_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await _store(tmp_path / "g.db")
    writer = AuditWriter(store, KEY)
    real = sqlite_ops.settle

    def broken(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)  # its statements ran: the group's transaction is rolled back with them
        raise sqlite3.IntegrityError("broken settle")

    try:
        await writer.append(draft(TENANT, 0))
        await store.reserve(TENANT, "p", "r1", 50, "2026-01-01T00:00:00Z")
        monkeypatch.setattr(sqlite_ops, "settle", broken)
        settled, rollup, link = await _finish_writes(store, writer, "r1")
        assert isinstance(settled, sqlite3.IntegrityError)
        assert rollup is None and isinstance(link, audit.AuditEntry)
        pool = await store.get_pool(TENANT, "p")  # the failed settle wrote nothing, alone or grouped
        assert pool is not None and (pool.used, pool.reserved) == (0, 50) and "r1" in pool.reservations
        assert sum(r.requests for r in await store.list_rollups(TENANT)) == 1  # counted once, not twice
        assert (await audit.verify(store, TENANT, KEY)).valid
    finally:
        await store.aclose()


async def test_a_lock_held_elsewhere_keeps_the_group_one_transaction_on_a_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await _store(tmp_path / "g.db")
    writer = AuditWriter(store, KEY)
    hops = _hops(store, monkeypatch)
    try:
        await writer.append(draft(TENANT, 0))
        await store.reserve(TENANT, "p", "r1", 50, "2026-01-01T00:00:00Z")
        hops.clear()
        store._run._write_lock.acquire()  # another thread of this process is writing
        finishing = asyncio.ensure_future(_finish_writes(store, writer, "r1"))
        await asyncio.sleep(0.05)
        assert not finishing.done()
        store._run._write_lock.release()
        await _one_transaction_on_the_pool(store, finishing, hops)
    finally:
        await store.aclose()


async def test_another_process_holding_the_file_keeps_the_group_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await _store(tmp_path / "g.db")
    writer = AuditWriter(store, KEY)
    hops = _hops(store, monkeypatch)
    other = sqlite3.connect(tmp_path / "g.db", isolation_level=None)  # another process's connection
    try:
        await writer.append(draft(TENANT, 0))
        await store.reserve(TENANT, "p", "r1", 50, "2026-01-01T00:00:00Z")
        hops.clear()
        other.execute("BEGIN IMMEDIATE")  # it holds the file's write lock
        finishing = asyncio.ensure_future(_finish_writes(store, writer, "r1"))
        await asyncio.sleep(0.2)
        assert not finishing.done()
        other.execute("ROLLBACK")
        await _one_transaction_on_the_pool(store, finishing, hops)
    finally:
        other.close()
        await store.aclose()


async def test_the_ledger_finishes_a_request_in_two_commits(tmp_path: Path) -> None:
    store = await _store(tmp_path / "g.db")
    await store.set_capacity(TENANT, "team", 100_000)
    ledger = ledger_of(store)
    try:
        await request(ledger, "first", Usage(1, 1), reserve=10)  # opens the writer's segment
        before = _commits(store)
        await request(ledger, "steady", Usage(2, 3), reserve=10)
        assert _commits(store) == before + 2  # the reserve; then the settle, rollup and audit link together
        pool = await store.get_pool(TENANT, "team")
        assert pool is not None and (pool.used, pool.reserved) == (2 + 5, 0)
        assert (await audit.verify(store, TENANT, LEDGER_KEY)).valid
    finally:
        await store.aclose()
