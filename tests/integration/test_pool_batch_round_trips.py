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
        key = params.get("Key", {})
        pk, sk = key.get("PK", {}).get("S", ""), key.get("SK", {}).get("S", "")
        calls[f"{model.name}:{'LEASE' if sk.startswith('LEASE#') else pk.split('#')[0]}"] += 1

    store.client().meta.events.register("before-parameter-build.dynamodb", record)
    return calls


async def _request(store: DynamoDBStore, rid: str, leased: bool = False) -> None:
    at = "2026-11-26T00:00:00Z"
    await store.reserve("acme", "p", rid, 10, at, Holder("k"), totals_only=True, leased=leased)
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


async def test_concurrent_leased_requests_batch_on_the_writer_s_shard(tmp_path: Path) -> None:
    async with dynamodb_store(tmp_path, kind="dynalite") as store:
        await store.set_capacity("acme", "p", 100_000)
        await _request(store, "warm", leased=True)  # the first lease: the pool item once
        calls = _recorder(store)
        await _request(store, "lone", leased=True)
        assert calls == Counter({"UpdateItem:LEASE": 2})  # c=1: reserve and settle on the shard

        # the first burst outgrows the first lease (16 reservations): the writer's leases double
        await asyncio.gather(*(_request(store, f"w{i}", leased=True) for i in range(REQUESTS)))
        calls.clear()
        await asyncio.gather(*(_request(store, f"r{i}", leased=True) for i in range(REQUESTS)))
        assert calls["UpdateItem:LEASE"] < REQUESTS  # of 2 * REQUESTS unbatched (measured: 24-25)
        assert calls["UpdateItem:POOL"] <= 1 and calls["GetItem:POOL"] <= 1  # one more lease at most
        assert set(calls) <= {"UpdateItem:LEASE", "UpdateItem:POOL", "GetItem:POOL", "GetItem:LEASE"}
        pool = await store.get_pool("acme", "p")
        assert pool is not None and (pool.used, pool.reserved) == (7 * (2 * REQUESTS + 2), 0)
