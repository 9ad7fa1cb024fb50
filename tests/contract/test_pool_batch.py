"""Many writes on ONE pool in ONE store instance at once (issue 11: group commit per pool item).

On DynamoDB the writes that arrive while one is in flight go together as one UpdateItem; each caller must
still get exactly its own outcome. The same cases run on SQLite and moto (no batching there): one contract.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tollgate.store.base import Holder, Overdrawn, Pool, Store

from .test_concurrency import reserve_or_refuse
from .test_store_contract import at

TIMEOUT = 120


async def _reserve(store: Store, rid: str, tokens: int) -> bool:
    """As the hot path reserves: with a holder, asking for the totals only."""
    return await reserve_or_refuse(store, rid, tokens, Holder("k", "prov", "m"), totals_only=True)


async def test_forty_concurrent_reserves_and_settles_on_one_pool_are_exact(store: Store) -> None:
    await store.set_capacity("acme", "p", 200)
    earlier = [f"pre{i}" for i in range(10)]
    for rid in earlier:
        await store.reserve("acme", "p", rid, 5, at(0))
    fresh = [f"r{i}" for i in range(40)]
    reserves = [_reserve(store, rid, 10) for rid in fresh]
    settles = [store.settle("acme", "p", rid, 3, reserved=5, totals_only=True) for rid in earlier]
    mixed: list[Any] = [x for pair in zip(reserves[:10], settles, strict=True) for x in pair] + reserves[10:]
    outcomes = await asyncio.wait_for(asyncio.gather(*mixed), TIMEOUT)
    admitted = [rid for rid in fresh if outcomes[_index(rid)]]
    assert all(isinstance(outcomes[2 * i + 1], Pool) for i in range(10))  # every settle counted once
    # 150 free at the start and the settles free 20 more: 15 fit for sure, 17 at most
    assert 15 <= len(admitted) <= 17
    pool = await store.get_pool("acme", "p")
    assert pool is not None
    assert (pool.used, pool.reserved) == (30, 10 * len(admitted))
    assert set(pool.reservations) == set(admitted)
    assert pool.holders[admitted[0]] == Holder("k", "prov", "m")

    again = (store.settle("acme", "p", rid, 4, reserved=10, totals_only=True) for rid in admitted * 2)
    results = await asyncio.wait_for(asyncio.gather(*again), TIMEOUT)
    assert sum(result is not None for result in results) == len(admitted)  # each once, the repeat None
    final = await store.get_pool("acme", "p")
    assert final == Pool("acme", "p", 200, 30 + 4 * len(admitted), 0, {})
    refill = await store.set_capacity("acme", "p", 200)  # remaining is consistent with the totals
    assert refill.used + refill.reserved == final.used


def _index(rid: str) -> int:
    i = int(rid[1:])
    return 2 * i if i < 10 else 10 + i


async def test_a_batch_member_whose_condition_fails_leaves_the_others_their_own_outcome(store: Store) -> None:
    await store.set_capacity("acme", "p", 100)
    await store.reserve("acme", "p", "held", 10, at(0))
    await store.reserve("acme", "p", "done", 10, at(0))
    await store.reserve("acme", "p", "live", 10, at(0))
    assert await store.settle("acme", "p", "done", 10, reserved=10) is not None
    calls = [
        store.reserve("acme", "p", "first", 5, at(1), totals_only=True),  # in flight: the rest wait
        store.reserve("acme", "p", "held", 10, at(1), totals_only=True),  # retried: already held, once
        store.settle("acme", "p", "done", 7, reserved=10, totals_only=True),  # settled already: None
        store.reserve("acme", "p", "huge", 500, at(1), totals_only=True),  # overdraws
        store.reserve("acme", "p", "a", 10, at(1), totals_only=True),
        store.settle("acme", "p", "live", 4, reserved=10, totals_only=True),
        store.reserve("acme", "p", "b", 10, at(1), totals_only=True),
    ]
    first, held, done, huge, a, live, b = await asyncio.wait_for(
        asyncio.gather(*calls, return_exceptions=True), TIMEOUT
    )
    assert isinstance(first, Pool) and isinstance(held, Pool) and isinstance(a, Pool) and isinstance(b, Pool)
    assert done is None
    assert isinstance(huge, Overdrawn) and huge.available < 500
    assert isinstance(live, Pool)
    pool = await store.get_pool("acme", "p")
    assert pool is not None
    assert set(pool.reservations) == {"held", "first", "a", "b"}
    assert pool.reservations["held"] == (10, at(0))  # the retry changed nothing
    assert (pool.used, pool.reserved) == (10 + 4, 10 + 5 + 10 + 10)
