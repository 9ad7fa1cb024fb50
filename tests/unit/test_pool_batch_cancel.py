"""A reserve that waits for a pool item's batch and whose caller is cancelled before the batch goes is not
sent (as a lone reserve cancelled before its request): no hold is left that nobody would settle. A
cancelled settle still goes (it is the charge); the others go, together or alone."""

from __future__ import annotations

import asyncio
from typing import Any

from tollgate.store.dynamodb_items import PK, SK, Item, Request
from tollgate.store.dynamodb_pool_batch import Member, PoolBatches

KEY: Item = {PK: {"S": "T#acme"}, SK: {"S": "POOL#p"}}


class Upstream:
    """The batches' UpdateItem and every member's lone write, recorded; the first lone write is held."""

    def __init__(self) -> None:
        self.sent: list[Request] = []
        self.alone: list[str] = []
        self.release = asyncio.Event()

    async def send(self, request: Request) -> Item | None:
        self.sent.append(request)
        return {"ok": {"BOOL": True}}

    def member(self, rid: str, *, held: bool = False, actual: int | None = None) -> Member:
        async def alone() -> str:
            self.alone.append(rid)
            if held:
                await self.release.wait()
            return f"{rid} alone"

        return Member(rid=rid, tokens=10, alone=alone, actual=actual, at="2026-11-27T00:00:00Z")


async def _with_one_cancelled(upstream: Upstream, waiting: list[Member], cancelled: int) -> list[Any]:
    """A write in flight ("first", held), then ``waiting`` queue behind it and the one at ``cancelled`` is
    cancelled before the flight lands; every outcome, "first"'s first."""
    batches = PoolBatches(upstream.send, finish=lambda item: "batched")
    first = asyncio.create_task(batches.write(KEY, upstream.member("first", held=True)))
    await asyncio.sleep(0)  # in flight: the next ones wait
    tasks = [asyncio.create_task(batches.write(KEY, member)) for member in waiting]
    await asyncio.sleep(0)
    tasks[cancelled].cancel()
    await asyncio.sleep(0)
    upstream.release.set()
    return await asyncio.wait_for(asyncio.gather(first, *tasks, return_exceptions=True), 10)


async def test_a_cancelled_waiting_write_is_left_out_of_the_batch() -> None:
    upstream = Upstream()
    results = await _with_one_cancelled(upstream, [upstream.member(rid) for rid in ("b", "gone", "d")], 1)
    assert results[0] == "first alone" and results[1] == results[3] == "batched"
    assert isinstance(results[2], asyncio.CancelledError)
    [batch] = upstream.sent
    assert set(batch["ExpressionAttributeNames"].values()) >= {"b", "d"}
    assert "gone" not in batch["ExpressionAttributeNames"].values()
    assert upstream.alone == ["first"]


async def test_when_only_one_write_is_left_it_goes_alone() -> None:
    upstream = Upstream()
    results = await _with_one_cancelled(upstream, [upstream.member(rid) for rid in ("gone", "kept")], 0)
    assert results[2] == "kept alone" and isinstance(results[1], asyncio.CancelledError)
    assert upstream.sent == [] and upstream.alone == ["first", "kept"]


async def test_a_cancelled_waiting_settle_still_goes() -> None:
    upstream = Upstream()
    await _with_one_cancelled(upstream, [upstream.member("charged", actual=7), upstream.member("other")], 0)
    [batch] = upstream.sent
    assert {"charged", "other"} <= set(batch["ExpressionAttributeNames"].values())
