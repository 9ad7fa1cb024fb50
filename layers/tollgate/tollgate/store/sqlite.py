"""The embedded store: one SQLite file in WAL mode, safe for several threads and processes.

- Every sqlite call runs on a dedicated, bounded thread pool (``tollgate-sqlite``), never on the loop's
  default executor: a writer waiting for the file lock blocks a worker, never the loop. The exception: the
  per-request writes (reserve, settle, audit links) are first tried on the loop itself when they can start
  without waiting (``sqlite_inline``), which saves a thread hop each.
- One connection per worker thread, opened in autocommit mode (``isolation_level=None``); each invariant is
  one explicit ``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error). ``BEGIN IMMEDIATE`` takes the
  file's write lock up front, so a check-then-update cannot interleave with another writer in any process;
  ``busy_timeout`` makes a writer wait for the lock, and the rare ``database is locked`` that SQLite returns
  without waiting is retried a bounded number of times.
- Within one process, writers queue on a lock before ``BEGIN IMMEDIATE`` rather than sleeping in SQLite's
  busy handler, which polls.
- If a caller is cancelled while its statement runs, the statement still completes (or rolls back) on its
  worker: a reservation may then be held with nobody to settle it, which is what the sweep is for.

The statements themselves live in ``sqlite_ops``, the schema in ``sqlite_schema``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, TypeVar

from .. import timeutil
from . import sqlite_ops as ops
from . import sqlite_responses as responses
from . import sqlite_rollups as rollups
from . import sqlite_rotation as rotation
from .base import (
    NOBODY,
    ApiKey,
    BeforeCharge,
    Holder,
    Pool,
    Reservation,
    StoredResponse,
)
from .rollup_base import Rollup
from .sqlite_alerts import SQLiteAlerts
from .sqlite_audit import SQLiteAudit
from .sqlite_budgets import SQLiteBudgets, create_budget_schema
from .sqlite_containers import SQLiteContainers
from .sqlite_group import Member, WriteGroups, fail, resolve, run_members
from .sqlite_inline import BUSY, InlineWriter, checkpoint
from .sqlite_limits import SQLiteLimits
from .sqlite_schema import create_schema

P = ParamSpec("P")
T = TypeVar("T")

BUSY_TIMEOUT_SECONDS = 10.0
LOCKED_RETRIES = 8


class StoreClosed(RuntimeError):
    """The store was closed (``aclose``); no further calls are accepted."""


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class _Connections:
    """One connection per worker thread, all remembered so that ``close_all`` can close them."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    def close_all(self) -> None:
        """Only once the worker threads are gone (a connection is used by its own thread alone)."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


class _Runner:
    """Runs a function of a connection on the pool, as a write or a read transaction, with retries."""

    def __init__(self, path: str, threads: int, busy_timeout: float) -> None:
        self._connections = _Connections(path, busy_timeout)
        self._busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tollgate-sqlite")
        self._write_lock = threading.Lock()
        self._inflight: set[asyncio.Future[Any]] = set()
        self._closed = False
        self._inline = InlineWriter(path)
        self._checkpointing: asyncio.Future[None] | None = None
        self._groups = WriteGroups()

    async def quick_write(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """A short write: on the loop's thread if it can start at once, else as ``write`` (sqlite_inline);
        while a group collects (``group_writes``), one transaction with the group's other writes."""
        call = functools.partial(fn, **kwargs) if kwargs else fn
        if self._groups.collecting is not None and not self._closed:
            return await self._groups.join(call, args)  # type: ignore[no-any-return]
        return await self._quick(call, *args)

    def group_writes(self) -> None:
        """The quick writes started before the loop's next callback: one transaction (sqlite_group)."""
        if not self._closed:
            self._groups.start(self._flush_group)

    def _flush_group(self, members: list[Member]) -> None:
        if self._closed:
            fail(members, StoreClosed("the SQLite store is closed"))
            return
        try:
            results = self._inline.attempt(self._write_lock, _transaction, run_members, members)
        except Exception:  # rolled back, nothing written: each on its own, with its own error if any
            self._groups.alone(members, self._quick)
            return
        if results is BUSY:  # the lock is held (another process, our checkpoint): wait for it on the pool
            self._track(asyncio.ensure_future(self._group_on_pool(members)))
            return
        resolve(members, results)
        self._checkpoint_if_due()

    async def _group_on_pool(self, members: list[Member]) -> None:
        """A group that could not start at once is still one transaction (a request's settles are never
        committed apart from its audit entry), on a worker that waits for the lock; if a member raises
        there (rolled back, nothing written), each runs again on its own, with its own error."""
        try:
            results = await self.write(run_members, members)
        except Exception:
            self._groups.alone(members, self._quick)
            return
        resolve(members, results)

    async def _quick(self, call: Callable[..., T], *args: Any) -> T:
        while True:
            if self._closed:
                raise StoreClosed("the SQLite store is closed")
            result = self._inline.attempt(self._write_lock, _transaction, call, *args)
            if result is not BUSY:
                break
            checkpointing = self._checkpointing
            if checkpointing is None:
                return await self.write(call, *args)
            # our own checkpoint holds the lock (it syncs the files: ~ms): wait for it here and try again,
            # rather than queue on the pool (a thread hop each, and each holds the lock in turn: issue 14)
            await asyncio.wait((checkpointing,))
        self._checkpoint_if_due()
        return result  # type: ignore[no-any-return]

    def _checkpoint_if_due(self) -> None:
        if self._checkpointing is None and self._inline.checkpoint_due():  # on a worker; not awaited
            future = asyncio.get_running_loop().run_in_executor(self._executor, self._checkpoint)
            self._checkpointing = future
            future.add_done_callback(self._checkpoint_done)  # first: before any waiter resumes
            self._track(future)

    def _checkpoint_done(self, _: asyncio.Future[None]) -> None:
        self._checkpointing = None

    def _checkpoint(self) -> None:
        # under the write lock: no commit of this process lands meanwhile, so the checkpoint can copy the
        # whole WAL and the next writer starts it afresh (else it grows forever under steady load: issue 14)
        with self._write_lock, contextlib.suppress(sqlite3.Error):  # a later one catches up
            checkpoint(self._connections.get())

    async def write(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await self._submit(lambda: self._retrying(lambda: self._write(fn, *args, **kwargs)))

    async def read(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await self._submit(lambda: self._retrying(lambda: self._read(fn, *args, **kwargs)))

    async def _submit(self, call: Callable[[], T]) -> T:
        if self._closed:
            raise StoreClosed("the SQLite store is closed")
        future = asyncio.get_running_loop().run_in_executor(self._executor, call)
        self._track(future)
        return await future

    def _track(self, future: asyncio.Future[Any]) -> None:
        """Work on the pool or the loop that ``aclose`` waits for."""
        self._inflight.add(future)
        future.add_done_callback(self._inflight.discard)

    def _write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        conn = self._connections.get()
        with self._write_lock:
            return _transaction(conn, "BEGIN IMMEDIATE", fn, *args, **kwargs)

    def _read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return _transaction(self._connections.get(), "BEGIN", fn, *args, **kwargs)

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """Retry ``database is locked`` a few times, but not past one busy timeout in all."""
        deadline = time.monotonic() + self._busy_timeout
        for retry in range(LOCKED_RETRIES):
            try:
                return attempt()
            except sqlite3.OperationalError as exc:
                last = retry == LOCKED_RETRIES - 1 or time.monotonic() >= deadline
                if last or not _is_locked(exc):
                    raise
            time.sleep(min(0.5, 0.01 * 2**retry))  # on the worker thread, never the loop
        raise AssertionError("unreachable")

    async def close(self) -> None:
        self._closed = True
        if self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)
        self._executor.shutdown(wait=True)  # workers are idle by now: this only joins them
        self._connections.close_all()
        self._inline.close()


def _transaction(conn: sqlite3.Connection, begin: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    conn.execute(begin)
    try:
        result = fn(conn, *args, **kwargs)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


class SQLiteStore(SQLiteAlerts, SQLiteAudit, SQLiteBudgets, SQLiteContainers, SQLiteLimits):
    """Implements ``tollgate.store.base.Store`` on one SQLite file."""

    def __init__(self, path: str, *, threads: int = 16, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> None:
        if path == ":memory:" or path.startswith("file::memory:"):
            raise ValueError("SQLiteStore needs a file: every worker thread opens its own connection")
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.path = path
        self._run: _Runner = _Runner(path, threads, busy_timeout)

    async def init_schema(self) -> None:
        await self._run.write(create_schema)
        await self._run.write(create_budget_schema)

    async def aclose(self) -> None:
        await self._run.close()

    def group_writes(self) -> None:
        """The quick writes started so far in this loop iteration share one transaction (sqlite_group)."""
        self._run.group_writes()

    # -------------------------------------------------------------------------------------------- keys

    async def create_key(self, key: ApiKey) -> None:
        await self._run.write(ops.create_key, key)

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        return await self._run.read(rotation.key_by_hash, key_hash)  # a retired hash too, in its grace

    async def rotate_key(self, key_id: str, new_hash: str, at: str, old_until: str) -> ApiKey | None:
        return await self._run.write(rotation.rotate_key, key_id, new_hash, at, old_until)

    async def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        return await self._run.read(ops.list_keys, tenant)

    async def get_key(self, key_id: str) -> ApiKey | None:
        return await self._run.read(ops.key_by, "key_id", key_id)

    async def page_keys(self, tenant: str | None, after: str | None, limit: int) -> list[ApiKey]:
        return await self._run.read(ops.page_keys, tenant, after, limit)

    async def revoke_key(self, key_id: str, at: str) -> ApiKey | None:
        return await self._run.write(ops.revoke_key, key_id, at)

    async def any_keys(self) -> bool:
        return await self._run.read(ops.any_keys)

    # ----------------------------------------------------------------------------------------- budgets

    async def set_capacity(self, tenant: str, pool: str, tokens: int | None) -> Pool:
        return await self._run.write(ops.set_capacity, tenant, pool, tokens)

    async def create_pool(self, tenant: str, pool: str) -> bool:
        return await self._run.write(ops.create_pool, tenant, pool)

    async def reserve(
        self,
        tenant: str,
        pool: str,
        reservation_id: str,
        tokens: int,
        at: str,
        holder: Holder = NOBODY,
        *,
        totals_only: bool = False,
        leased: bool = False,  # one file, one writer at a time: nothing to spread
    ) -> Pool:
        reservation = (reservation_id, tokens, at)
        return await self._run.quick_write(ops.reserve, tenant, pool, reservation, holder, totals_only)

    async def settle(
        self,
        tenant: str,
        pool: str,
        reservation_id: str,
        actual: int,
        *,
        reserved: int | None = None,
        totals_only: bool = False,
    ) -> Pool | None:
        # one transaction either way: ``reserved`` saves nothing here
        return await self._run.quick_write(ops.settle, tenant, pool, reservation_id, actual, totals_only)

    async def settle_anonymous(self, tenant: str, pool: str, reserved: int, actual: int) -> Pool | None:
        return await self._run.quick_write(ops.settle_anonymous, tenant, pool, reserved, actual)

    async def get_pool(self, tenant: str, pool: str) -> Pool | None:
        return await self._run.read(ops.get_pool, tenant, pool)

    async def list_pools(self, tenant: str | None = None) -> list[Pool]:
        return await self._run.read(ops.list_pools, tenant)

    async def sweep_reservations(
        self, older_than: str, at: str, before_charge: BeforeCharge | None = None
    ) -> list[Reservation]:
        await self._run.write(ops.drop_markers, older_than)  # first: this sweep's own markers stay
        swept: list[Reservation] = []
        for reservation in await self._run.read(ops.old_reservations, older_than):
            if before_charge is not None:
                await before_charge(reservation)
            if await self._run.write(ops.sweep_one, reservation, at):
                swept.append(reservation)
        return swept

    # ---------------------------------------------------------------------------------------- sessions

    async def load_session(self, tenant: str, session_id: str) -> tuple[list[dict[str, Any]], int]:
        return await self._run.read(ops.load_session, tenant, session_id, timeutil.now_str())

    async def save_session(
        self,
        tenant: str,
        session_id: str,
        messages: list[dict[str, Any]],
        version: int,
        expires_at: str,
    ) -> bool:
        update = (messages, version, expires_at)
        return await self._run.write(ops.save_session, tenant, session_id, update, timeutil.now_str())

    async def delete_session(self, tenant: str, session_id: str) -> bool:
        return await self._run.write(ops.delete_session, tenant, session_id)

    async def sweep_sessions(self, now: str) -> int:
        return await self._run.write(ops.sweep_sessions, now)

    # --------------------------------------------------------------------------------------- responses

    async def put_response(self, record: StoredResponse) -> None:
        await self._run.write(responses.put_response, record)

    async def get_response(self, tenant: str, response_id: str) -> StoredResponse | None:
        return await self._run.read(responses.get_response, tenant, response_id, timeutil.now_str())

    async def delete_response(self, tenant: str, response_id: str) -> bool:
        return await self._run.write(responses.delete_response, tenant, response_id, timeutil.now_str())

    async def sweep_responses(self, now: str) -> int:
        return await self._run.write(responses.sweep_responses, now)

    # ----------------------------------------------------------------------------------------- rollups

    async def add_rollup(self, change: Rollup) -> None:
        await self._run.quick_write(rollups.add_rollup, change)

    async def list_rollups(
        self, tenant: str | None, since_day: str | None = None, until_day: str | None = None
    ) -> list[Rollup]:
        return await self._run.read(rollups.list_rollups, tenant, since_day, until_day)

    async def rollup_totals(
        self, tenant: str | None, since_day: str | None, until_day: str | None, group_by: str | None
    ) -> list[Rollup]:
        return await self._run.read(rollups.rollup_totals, tenant, since_day, until_day, group_by)
