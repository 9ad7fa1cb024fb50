"""Reserve and settle read the pool's totals back with ``RETURNING`` (SQLite 3.35+); an older SQLite takes
the extra statements. Both paths give the same answers (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tollgate.store import sqlite_ops
from tollgate.store.base import Overdrawn, UnknownPool
from tollgate.store.sqlite import SQLiteStore

AT = "2026-01-01T00:00:00.000000Z"


@pytest.fixture(params=["returning", "older sqlite"])
def returning(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    if request.param == "older sqlite":
        suffix = sqlite_ops._RETURNING_TOTALS
        monkeypatch.setattr(sqlite_ops, "RETURNING", False)
        monkeypatch.setattr(sqlite_ops, "_RESERVE", sqlite_ops._RESERVE.removesuffix(suffix))
        monkeypatch.setattr(sqlite_ops, "_SETTLE", sqlite_ops._SETTLE.removesuffix(suffix))
    return sqlite_ops.RETURNING


async def test_reserve_and_settle_answer_alike(returning: bool, tmp_path: Path) -> None:
    assert ("RETURNING" in sqlite_ops._RESERVE) == returning
    store = SQLiteStore(str(tmp_path / "r.db"))
    await store.init_schema()
    try:
        await store.set_capacity("t", "p", 100)
        held = await store.reserve("t", "p", "r1", 60, AT, totals_only=True)
        assert (held.capacity, held.used, held.reserved) == (100, 0, 60)
        again = await store.reserve("t", "p", "r1", 60, AT, totals_only=True)  # a known id: nothing changes
        assert (again.used, again.reserved) == (0, 60)
        with pytest.raises(Overdrawn) as refused:
            await store.reserve("t", "p", "r2", 50, AT, totals_only=True)
        assert refused.value.available == 40
        with pytest.raises(UnknownPool):
            await store.reserve("t", "nope", "r3", 1, AT, totals_only=True)
        full = await store.reserve("t", "p", "r4", 10, AT)
        assert set(full.reservations) == {"r1", "r4"} and full.reserved == 70
        settled = await store.settle("t", "p", "r1", 25, totals_only=True)
        assert settled is not None and (settled.used, settled.reserved) == (25, 10)
        assert await store.settle("t", "p", "r1", 25, totals_only=True) is None  # exactly once
        last = await store.settle("t", "p", "r4", 5)
        assert last is not None and (last.used, last.reserved, last.reservations) == (30, 0, {})
    finally:
        await store.aclose()
