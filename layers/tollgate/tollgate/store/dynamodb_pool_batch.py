"""Group commit of one token pool item's writes inside one store instance (issue 11).

While a reserve or settle on pool item P is in flight, the reserves and settles on P that this store
receives meanwhile wait; when it returns they go together as ONE conditional UpdateItem: the net change of
the totals, each new reservation SET, each settled one REMOVEd, under the AND of every member's own
condition (a reserve: its entry is absent and ``remaining`` covers the SUM of the batch's new reservations;
a settle: its entry still holds the tokens it carries). Success is the outcome of running the members one
after the other (reserves first: each fits because their sum does), so every member gets the pool as that
write left it. A batch whose condition fails (or that errs) is re-run member by member through the store's
ordinary single-write path, so each caller gets exactly the outcome it gets without batching (a Pool,
``Overdrawn``, None for a settled id, the pool for a retried reserve); nothing is applied twice or lost.

Nothing waits when nothing is in flight: a lone request makes exactly the calls it made before. On Lambda
one execution environment serves one request at a time, so batching happens only in multi-request
processes (``tollgate serve``, a container). A writer's lease shard (``dynamodb_leases``) is batched the
same way (``shard=True``: the batch also requires the shard open and records the last reserve's time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .base import Holder
from .dynamodb_items import PK, SK, Item, Request, expression, n, reservation_value, s

MAX_MEMBERS = 16  # DynamoDB's 4 KB expression limit: ~80 characters of expression per member


@dataclass
class Member:
    """One write waiting for a batch: a reserve (``actual`` None) or a settle carrying its tokens."""

    rid: str
    tokens: int
    alone: Callable[[], Awaitable[Any]]  # the store's single-write path: the fallback
    actual: int | None = None
    at: str = ""
    holder: Holder = field(default_factory=Holder)
    future: asyncio.Future[Any] | None = None

    @property
    def is_reserve(self) -> bool:
        return self.actual is None


def batch_request(key: Item, members: list[Member], *, shard: bool = False) -> Request:
    """One conditional UpdateItem for every member (their rids are distinct) on a pool item or, with
    ``shard``, on an open lease shard."""
    values: Item = {}
    names: dict[str, str] = {}
    sets: list[str] = []
    removes: list[str] = []
    conditions = ["attribute_exists(#pk)"]
    if shard:
        names["#closed"] = "closed"
        conditions.append("attribute_not_exists(#closed)")
        reserved_at = max((m.at for m in members if m.is_reserve), default="")
        if reserved_at:
            names["#touch"] = "touched"
            values[":at"] = s(reserved_at)
            sets.append("#touch = :at")
    held = sum(m.tokens for m in members if m.is_reserve)
    released = sum(m.tokens for m in members if not m.is_reserve)
    charged = sum(m.actual or 0 for m in members)
    if held:
        conditions.append("(attribute_not_exists(#cap) OR #rem >= :e)")
        values[":e"] = n(held)
    for i, m in enumerate(members):
        names[f"#r{i}"] = m.rid
        if m.is_reserve:
            values[f":v{i}"] = reservation_value(m.tokens, m.at, m.holder)
            sets.append(f"#map.#r{i} = :v{i}")
            conditions.append(f"attribute_not_exists(#map.#r{i})")
        else:
            values[f":t{i}"] = n(m.tokens)
            removes.append(f"#map.#r{i}")
            conditions.append(f"#map.#r{i}.#tok = :t{i}")
    values.update({":d": n(released - charged - held), ":r": n(held - released), ":u": n(charged)})
    update = "SET #rem = #rem + :d, #rsv = #rsv + :r, #used = #used + :u"
    update += "".join(", " + part for part in sets)
    if removes:
        update += " REMOVE " + ", ".join(removes)
    request = expression(
        key=key,
        values=values,
        names=names,
        UpdateExpression=update,
        ConditionExpression=" AND ".join(conditions),
    )
    return {**request, "ReturnValues": "ALL_NEW"}


Send = Callable[[Request], Awaitable[Item | None]]  # the batch's UpdateItem: the new item, None if refused


class PoolBatches:
    """The writes waiting on each pool item (or lease shard) of one store instance (one event loop)."""

    def __init__(self, send: Send, finish: Callable[[Item], Any], limit: int = MAX_MEMBERS) -> None:
        self._send = send
        self._finish = finish  # the new item -> what each member returns
        self._limit = limit
        self._waiting: dict[tuple[str, str], list[Member]] = {}  # present: a write on the item is in flight
        self._flushing: set[asyncio.Task[None]] = set()  # held until done (the loop keeps weak references)

    async def write(self, item_key: Item, member: Member, *, shard: bool = False) -> Any:
        key = (item_key[PK]["S"], item_key[SK]["S"])
        waiting = self._waiting.get(key)
        if waiting is not None:  # wait for the write in flight, then go with the next batch
            member.future = asyncio.get_running_loop().create_future()
            waiting.append(member)
            return await member.future
        self._waiting[key] = []
        try:
            return await member.alone()
        finally:
            if self._waiting[key]:
                task = asyncio.get_running_loop().create_task(self._flush(key, item_key, shard))
                self._flushing.add(task)
                task.add_done_callback(self._flushing.discard)
            else:
                del self._waiting[key]

    async def _flush(self, key: tuple[str, str], item_key: Item, shard: bool) -> None:
        """Send the waiting writes batch after batch until none waits (new ones join meanwhile)."""
        waiting = self._waiting[key]
        try:
            while waiting:
                batch: list[Member] = []
                rids: set[str] = set()
                for m in list(waiting):
                    if len(batch) == self._limit:
                        break
                    if m.is_reserve and m.future is not None and m.future.cancelled():
                        # its caller went away before it was sent: no hold that nobody would settle (a
                        # settle still goes: it is the charge, and the caller's finish is shielded anyway)
                        waiting.remove(m)
                        continue
                    if m.rid not in rids:  # one path once per expression; a repeat goes next time
                        batch.append(m)
                        rids.add(m.rid)
                        waiting.remove(m)
                await self._run(item_key, shard, batch)
        finally:
            del self._waiting[key]

    async def _run(self, item_key: Item, shard: bool, batch: list[Member]) -> None:
        item: Item | None = None
        if len(batch) > 1:
            try:
                item = await self._send(batch_request(item_key, batch, shard=shard))
            except Exception:
                item = None  # re-run one by one: each caller gets its own error
        if item is not None:
            outcome = self._finish(item)
            for m in batch:
                _resolve(m, outcome, None)
            return
        for m in batch:  # exactly as without batching, in arrival order
            try:
                result = await m.alone()
            except Exception as exc:
                _resolve(m, None, exc)
            else:
                _resolve(m, result, None)


def _resolve(member: Member, result: Any, error: BaseException | None) -> None:
    future = member.future
    if future is None or future.done():  # the caller went away; the write stands, as a lone one would
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
