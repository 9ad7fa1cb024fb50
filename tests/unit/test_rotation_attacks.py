"""Key rotation attacked with a warm key cache on a second process: an old secret cached during its grace
is refused once the grace ends even while the cache entry lives (the cached record carries the grace as its
expiry); a second rotation with no grace ends the first old secret in the store at once, and in a warm
cache within the cache time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tollgate import keys
from tollgate.errors import Unauthorized
from tollgate.key_rotation import rotate
from tollgate.keys import Authenticator, new_key_record
from tollgate.store.sqlite import SQLiteStore

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_warm_cache_never_stretches_the_grace_and_a_second_rotation_ends_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monotonic = Monotonic()
    monkeypatch.setattr(keys.time, "monotonic", monotonic)
    wall = {"now": NOW}
    store = SQLiteStore(str(tmp_path / "keys.db"))
    await store.init_schema()
    try:
        first, record = new_key_record("acme")
        await store.create_key(record)
        second, _, until = await rotate(store, record.key_id, 60, NOW)
        assert until == "2026-05-01T12:01:00.000000Z"
        other = Authenticator(store, cache_seconds=3600, allow_open=False, clock=lambda: wall["now"])
        assert (await other.authenticate(first, loopback=False)).key_id == record.key_id  # cached now
        monotonic.now += 61
        wall["now"] = NOW + timedelta(seconds=61)  # the grace is over; the cache entry is not
        with pytest.raises(Unauthorized) as refused:
            await other.authenticate(first, loopback=False)
        assert refused.value.code == "key_expired"

        # rotate again at once with no grace (the second secret leaked, and the first with it)
        third, _, _ = await rotate(store, record.key_id, 3600, wall["now"])
        fourth, _, _ = await rotate(store, record.key_id, 0, wall["now"])
        fresh = Authenticator(store, cache_seconds=0, allow_open=False, clock=lambda: wall["now"])
        for secret in (first, second, third):
            with pytest.raises(Unauthorized):
                await fresh.authenticate(secret, loopback=False)
        assert (await fresh.authenticate(fourth, loopback=False)).key_id == record.key_id
    finally:
        await store.aclose()
