"""Short writes on the event loop's own thread, when they can start without waiting.

A hop to the store's thread pool costs ~45 µs of CPU (a queue put, a thread wake-up, two GIL hand-offs);
the per-request writes themselves (reserve, settle, one audit link) take ~5-30 µs. So these are first tried
right here, on one connection of their own whose ``busy_timeout`` is 0: when another thread of this process
holds the write lock, or SQLite answers ``database is locked`` (another process is writing), nothing was
written and the caller goes to the pool as before, where writers wait for the lock. A write on the loop
never waits.

That connection never checkpoints on its own (``wal_autocheckpoint`` 0: a checkpoint syncs the file); every
``CHECKPOINT_EVERY`` commits a passive checkpoint is handed to the pool instead.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Final

CHECKPOINT_EVERY = 500


class Busy:
    """The write could not start at once; nothing was written."""


BUSY: Final = Busy()


class InlineWriter:
    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._commits = 0

    def attempt(
        self,
        write_lock: threading.Lock,
        transaction: Callable[..., Any],
        fn: Callable[..., Any],
        *args: Any,
    ) -> Any:
        """``transaction(conn, "BEGIN IMMEDIATE", fn, *args)`` now, or ``BUSY`` if it would wait."""
        if not write_lock.acquire(blocking=False):
            return BUSY
        try:
            try:
                conn = self._conn or self._open()
                result = transaction(conn, "BEGIN IMMEDIATE", fn, *args)
            except sqlite3.OperationalError as exc:
                text = str(exc).lower()
                if "locked" in text or "busy" in text:  # rolled back: nothing was written
                    return BUSY
                raise
        finally:
            write_lock.release()
        self._commits += 1
        return result

    def checkpoint_due(self) -> bool:
        if self._commits < CHECKPOINT_EVERY:
            return False
        self._commits = 0
        return True

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=0, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout = 0")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def checkpoint(conn: sqlite3.Connection) -> None:
    """A passive checkpoint: copies what it can of the WAL into the file, waits for nobody."""
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
