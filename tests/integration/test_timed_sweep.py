"""The timed sweep lives in the app's lifespan when asked for (``tollgate serve``), never otherwise (the
Lambda chat function), and ``TOLLGATE_SWEEP_INTERVAL_SECONDS=0`` turns it off. Time is the injected clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from tests.fakes.server import ServerThread
from tollgate import timeutil
from tollgate.config import Settings
from tollgate.store.base import Holder, Pool
from tollgate.store.sqlite import SQLiteStore

MAX_AGE = 1800


def pool_after(path: Path, seconds: float) -> Pool:
    async def read() -> Pool:
        store = SQLiteStore(str(path))
        try:
            await asyncio.sleep(seconds)
            found = await store.get_pool("acme", "team")
            assert found is not None
            return found
        finally:
            await store.aclose()

    return asyncio.run(read())


def seed(path: Path) -> None:
    async def write() -> None:
        store = SQLiteStore(str(path))
        try:
            await store.init_schema()
            await store.set_capacity("acme", "team", 1000)
            holder = Holder("key-1", "openai", "gpt-4o-mini")
            await store.reserve("acme", "team", "crashed", 100, timeutil.now_str(), holder)
        finally:
            await store.aclose()

    asyncio.run(write())


@pytest.mark.parametrize(
    ("run_sweeper", "interval", "swept"),
    [(True, 0.1, True), (True, 0.0, False), (False, 0.1, False)],
    ids=["serve", "interval-0", "lambda-chat"],
)
def test_the_lifespan_sweeps_on_a_timer_only_when_asked(
    start_gateway: Callable[..., ServerThread],
    tmp_path: Path,
    run_sweeper: bool,
    interval: float,
    swept: bool,
) -> None:
    path = tmp_path / "timed.db"
    seed(path)
    settings = Settings(sweep_interval_seconds=interval, reservation_max_age_seconds=MAX_AGE)
    late = timeutil.utc_now() + timedelta(seconds=MAX_AGE + 1)
    start_gateway(settings, store=SQLiteStore(str(path)), run_sweeper=run_sweeper, clock=lambda: late)
    deadline = time.monotonic() + 10
    pool = pool_after(path, 0.3)
    while swept and pool.reservations and time.monotonic() < deadline:
        pool = pool_after(path, 0.1)
    if swept:
        assert (pool.used, pool.reserved, pool.reservations) == (100, 0, {})
    else:
        assert (pool.used, pool.reserved) == (0, 100)


def test_the_timed_sweep_leaves_young_reservations_alone(
    start_gateway: Callable[..., ServerThread], tmp_path: Path
) -> None:
    path = tmp_path / "young.db"
    seed(path)
    settings = Settings(sweep_interval_seconds=0.05, reservation_max_age_seconds=MAX_AGE)
    almost = timeutil.utc_now() + timedelta(seconds=MAX_AGE - 60)
    start_gateway(settings, store=SQLiteStore(str(path)), run_sweeper=True, clock=lambda: almost)
    assert pool_after(path, 0.5).reservations.keys() == {"crashed"}


def test_the_max_age_cannot_be_set_below_lambdas_limit() -> None:
    with pytest.raises(ValueError, match="960"):
        Settings(reservation_max_age_seconds=900)
    assert Settings().reservation_max_age_seconds == 1800 and Settings().sweep_interval_seconds == 300
