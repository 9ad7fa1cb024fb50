"""What a ``kill -9`` can leave in a SQLite file while requests finish: never half of a money record.

Whatever the file holds when the process dies is what had been committed. These tests copy the committed
state (SQLite's backup API, from a connection of its own) before every store call that ``finish`` makes,
and at the end: in every copy each request is either audited with no hold left (tokens and every USD
budget settled) or not audited with every hold still there (for the sweep, which audits and charges them
together). A request settled but not audited is a charge nobody can account for (``costs --verify``
finds its rollup without an entry); a USD hold left behind an audited request would be charged its upper
bound by the sweep while the audit says the real cost. Cases: a process's first request (its audit
segment is opened first), and requests of one tenant finishing at once (their appends take turns).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.contract.test_usd_budgets import KEY, MINI, Clock, _ledger
from tollgate.ledger import Booking, Charge
from tollgate.providers.base import Usage
from tollgate.store.budget_records import BudgetRule
from tollgate.store.sqlite import SQLiteStore

Image = tuple[bool, bool, int]  # audited, token hold left, USD holds left
BEFORE, AFTER = (False, True, 2), (True, False, 0)


def image(path: Path, request_ids: Sequence[str]) -> tuple[Image, ...]:
    source, copy = sqlite3.connect(path), sqlite3.connect(":memory:")
    try:
        source.backup(copy)
        return tuple(_state(copy, rid) for rid in request_ids)
    finally:
        source.close()
        copy.close()


def _state(copy: sqlite3.Connection, request_id: str) -> Image:
    audited = copy.execute("SELECT 1 FROM audit_entries WHERE request_id = ?", (request_id,))
    token = copy.execute("SELECT 1 FROM reservations WHERE reservation_id = ?", (request_id,))
    usd = copy.execute("SELECT count(*) FROM usd_reservations WHERE reservation_id = ?", (request_id,))
    return audited.fetchone() is not None, token.fetchone() is not None, int(usd.fetchone()[0])


class Imaged:
    """The store, taking an image of the file before each call (once ``watching``)."""

    def __init__(self, store: SQLiteStore, take: Callable[[], None]) -> None:
        self._store, self._take, self.watching = store, take, False

    def group_writes(self) -> None:  # looked up on the class (``sqlite_group.group_writes``)
        self._store.group_writes()

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._store, name)
        if not callable(real) or not self.watching:
            return real

        def imaged(*args: Any, **kwargs: Any) -> Any:
            self._take()
            return real(*args, **kwargs)

        return imaged


async def _finish_all(tmp_path: Path, warm: int, rids: Sequence[str]) -> list[tuple[Image, ...]]:
    """``warm`` requests finish first (no images), then ``rids`` finish at once, imaged throughout."""
    path = tmp_path / "crash.db"
    store = SQLiteStore(str(path), threads=2)
    await store.init_schema()
    images: list[tuple[Image, ...]] = []
    imaged = Imaged(store, lambda: images.append(image(path, rids)))
    try:
        ledger = await _ledger(imaged, Clock("2026-11-26T10:00:00"))  # type: ignore[arg-type]
        await store.put_budget_rule(BudgetRule("acme", "key", "key_a", 10**9, "daily"))
        await store.put_budget_rule(BudgetRule("acme", "pool", "team", 10**9, "monthly"))
        bookings = []
        for rid in [f"warm{n}" for n in range(warm)] + list(rids):
            bookings.append((rid, booking := ledger.book(KEY, None, "0" * 64)))
            await ledger.reserve(booking, rid, 1000, MINI)

        async def finish(rid: str, booking: Booking) -> None:
            charge = Charge("acme", "key_a", "team", rid, "openai", "gpt-4o-mini", Usage(10, 100))
            await ledger.finish(booking, charge, "ok", None, save_session=False)

        for rid, booking in bookings[:warm]:
            await finish(rid, booking)
        assert image(path, rids) == (BEFORE,) * len(rids)
        imaged.watching = True
        await asyncio.gather(*(finish(rid, booking) for rid, booking in bookings[warm:]))
        imaged.watching = False
        images.append(image(path, rids))
    finally:
        await store.aclose()
    assert images[-1] == (AFTER,) * len(rids)
    return images


async def test_a_processs_first_request_is_audited_with_its_money_or_not_at_all(tmp_path: Path) -> None:
    images = await _finish_all(tmp_path, 0, ["r1"])
    assert {state for states in images for state in states} <= {BEFORE, AFTER}, images


async def test_requests_of_one_tenant_finishing_at_once_are_each_all_or_nothing(tmp_path: Path) -> None:
    images = await _finish_all(tmp_path, 1, [f"r{n}" for n in range(4)])
    assert {state for states in images for state in states} <= {BEFORE, AFTER}, images
