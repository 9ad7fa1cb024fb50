"""One commit for the writes a request makes at the same moment (issue 14).

When a request finishes, its settle, its cost rollup and its audit link (entry and head) start side by side,
in one loop iteration; each was a transaction of its own: ``BEGIN IMMEDIATE`` … ``COMMIT``, a commit each.
``group_writes(store)``, called right after those writes were started (``asyncio.gather``), collects the
quick writes (``sqlite_inline``) that start before the loop reaches its callback, and runs them there as one
transaction on the loop's thread: one commit instead of three, and the request's settles (tokens and every
USD hold), rollup and audit entry are in the file together or not at all. For that the audit entry's write
must start with the others: the ledger takes the tenant's audit turn first (``AuditWriter.take_turn``: the
segment opened, no other append of the tenant in flight), so that a ``kill -9`` never leaves a request
settled but unaudited (``tests/contract/test_sqlite_crash_image.py``).

If the write lock cannot be taken at once (``BUSY``: another process writes, or this one's checkpoint),
the group is still one transaction, run on a worker that waits for the lock. If any member raises (the
transaction is then rolled back: nothing was written), every member runs again on its own, as it would
have without the group; so a member's error is its own, never its neighbours'. Not waiting on the loop
for another iteration per write (the grouping tried in the second pass, which cost more than it saved):
the callback is queued behind the tasks that the caller has just started, in the same iteration.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any

Member = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]


class WriteGroups:
    """The group being collected (None: none), and the members that had to run again on their own."""

    def __init__(self) -> None:
        self.collecting: list[Member] | None = None
        self._alone: set[asyncio.Task[None]] = set()

    def start(self, flush: Callable[[list[Member]], None]) -> None:
        if self.collecting is not None:
            return
        group: list[Member] = []
        self.collecting = group
        asyncio.get_running_loop().call_soon(self._flush, flush, group)

    def join(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> asyncio.Future[Any]:
        assert self.collecting is not None
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.collecting.append((fn, args, future))
        return future

    def _flush(self, flush: Callable[[list[Member]], None], group: list[Member]) -> None:
        self.collecting = None
        if group:
            flush(group)

    def alone(self, members: list[Member], write: Callable[..., Any]) -> None:
        """Each member as its own write (``write(fn, *args)``, a coroutine), its outcome into its future."""
        for fn, args, future in members:
            task = asyncio.ensure_future(_settle_future(future, write(fn, *args)))
            self._alone.add(task)
            task.add_done_callback(self._alone.discard)


def run_members(conn: sqlite3.Connection, members: list[Member]) -> list[Any]:
    """Inside the group's one transaction: every member's statements, in the order they joined."""
    return [fn(conn, *args) for fn, args, _ in members]


def resolve(members: list[Member], results: list[Any]) -> None:
    for (_, _, future), result in zip(members, results, strict=True):
        if not future.done():  # a caller cancelled meanwhile: the write is done all the same
            future.set_result(result)


def fail(members: list[Member], error: Exception) -> None:
    for _, _, future in members:
        if not future.done():
            future.set_exception(error)


async def _settle_future(future: asyncio.Future[Any], write: Any) -> None:
    try:
        result = await write
    except Exception as exc:  # handed to the waiting caller
        if not future.done():
            future.set_exception(exc)
        return
    except BaseException:  # cancelled (the loop is closing): so is the caller's wait
        future.cancel()
        raise
    if not future.done():
        future.set_result(result)


def groups_writes(store: object) -> bool:
    """Whether ``store`` can group writes (SQLite), looked up on the class: a wrapper's ``__getattr__``
    does not count."""
    return getattr(type(store), "group_writes", None) is not None


def group_writes(store: object) -> None:
    """Group the quick writes started so far in this loop iteration, on a store that can (SQLite); a no-op
    on any other."""
    if groups_writes(store):
        type(store).group_writes(store)  # type: ignore[attr-defined]
