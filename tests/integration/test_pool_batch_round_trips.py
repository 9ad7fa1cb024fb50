"""Pool UpdateItems per request on DynamoDB (dynalite), counted with botocore's ``before-parameter-build``
event as in test_round_trips.py: concurrent requests on one pool make fewer than 2 (reserve + settle) each
because the writes that wait for one in flight go together; a lone request makes exactly the calls it made
before batching (one reserve, one settle, no read)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from tests.contract.backend_dynamodb import dynamodb_store
from tollgate.store.base import Holder
from tollgate.store.dynamodb import DynamoDBStore

REQUESTS = 40


def _recorder(store: DynamoDBStore) -> Counter[str]:
    calls: Counter[str] = Counter()

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        pk = params.get("Key", {}).get("PK", {}).get("S", "")
        calls[f"{model.name}:{pk.split('#')[0]}"] += 1

    store.client().meta.events.register("before-parameter-build.dynamodb", record)
    return calls


async def _request(store: DynamoDBStore, rid: str) -> None:
    await store.reserve("acme", "p", rid, 10, "2026-11-26T00:00:00Z", Holder("k"), totals_only=True)
    assert await store.settle("acme", "p", rid, 7, reserved=10, totals_only=True) is not None


async def test_concurrent_requests_make_fewer_pool_writes_and_a_lone_one_the_same(tmp_path: Path) -> None:
    async with dynamodb_store(tmp_path, kind="dynalite") as store:
        await store.set_capacity("acme", "p", 10_000)
        calls = _recorder(store)
        await _request(store, "lone")
        assert calls == Counter({"UpdateItem:POOL": 2})  # c=1: reserve and settle, nothing else

        calls.clear()
        await asyncio.gather(*(_request(store, f"r{i}") for i in range(REQUESTS)))
        assert set(calls) == {"UpdateItem:POOL"}  # no read, no fallback
        assert calls["UpdateItem:POOL"] < 2 * REQUESTS / 4
        pool = await store.get_pool("acme", "p")
        assert pool is not None and (pool.used, pool.reserved, pool.reservations) == (
            7 * (REQUESTS + 1),
            0,
            {},
        )
        assert pool.capacity is not None and pool.capacity - pool.used == 10_000 - 7 * (REQUESTS + 1)


async def test_a_refused_batch_is_rerun_member_by_member(tmp_path: Path) -> None:
    async with dynamodb_store(tmp_path, kind="dynalite") as store:
        await store.set_capacity("acme", "p", 100)
        at = "2026-11-26T00:00:00Z"
        await store.reserve("acme", "p", "held", 10, at)
        calls = _recorder(store)
        outcomes = await asyncio.gather(
            store.reserve("acme", "p", "first", 5, at, totals_only=True),  # in flight: the others wait
            store.reserve("acme", "p", "held", 10, at, totals_only=True),  # a retry: fails the batch
            store.reserve("acme", "p", "a", 10, at, totals_only=True),
            store.reserve("acme", "p", "b", 10, at, totals_only=True),
        )
        assert [sorted(pool.reservations) for pool in outcomes][-1] == ["a", "b", "first", "held"]
        # the first alone, the batch of three (refused: "held" exists), then each of the three alone
        assert calls["UpdateItem:POOL"] == 1 + 1 + 3
        assert calls["GetItem:POOL"] <= 1  # the retry's read when the server does not return the old item
        pool = await store.get_pool("acme", "p")
        assert pool is not None and pool.reserved == 35
