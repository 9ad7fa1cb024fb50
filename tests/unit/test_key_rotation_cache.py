"""How long a rotated key's old secret can live on in a key cache: the rotating process forgets it at once;
another process that cached it before the rotation accepts it until that cache entry ends
(``TOLLGATE_KEY_CACHE_SECONDS``), never longer; a process without it cached refuses it after the grace."""

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


async def test_a_cached_old_secret_lives_at_most_the_cache_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monotonic = Monotonic()
    monkeypatch.setattr(keys.time, "monotonic", monotonic)
    wall = {"now": NOW}
    store = SQLiteStore(str(tmp_path / "keys.db"))
    await store.init_schema()
    try:
        old, record = new_key_record("acme")
        await store.create_key(record)
        rotating = Authenticator(store, cache_seconds=30, allow_open=False, clock=lambda: wall["now"])
        other = Authenticator(store, cache_seconds=30, allow_open=False, clock=lambda: wall["now"])
        for authenticator in (rotating, other):
            assert (await authenticator.authenticate(old, loopback=False)).key_id == record.key_id
        new, _, until = await rotate(store, record.key_id, 0, NOW)  # no grace: the old secret stops now
        rotating.forget(record.key_id)
        assert until == "2026-05-01T12:00:00.000000Z"
        with pytest.raises(Unauthorized):
            await rotating.authenticate(old, loopback=False)
        fresh = Authenticator(store, cache_seconds=30, allow_open=False, clock=lambda: wall["now"])
        with pytest.raises(Unauthorized):
            await fresh.authenticate(old, loopback=False)
        monotonic.now += 29  # the other process's cache entry still holds the record from before
        wall["now"] = NOW + timedelta(seconds=29)
        assert (await other.authenticate(old, loopback=False)).key_id == record.key_id
        monotonic.now += 2  # its entry ended: it reads the store again and refuses the old secret
        with pytest.raises(Unauthorized) as refused:
            await other.authenticate(old, loopback=False)
        assert refused.value.code == "key_expired"
        for authenticator in (rotating, other, fresh):
            assert (await authenticator.authenticate(new, loopback=False)).key_id == record.key_id
    finally:
        await store.aclose()
