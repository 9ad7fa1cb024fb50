"""Escrow leases: one tenant's token-pool writes spread over one shard item per writer (issue 11).

Without leases every reserve and settle of a pool is a conditional write on the pool item, so one busy
tenant's requests all queue on one item (dynalite's item lock; on DynamoDB ~1,000 writes/s per item and a
write cost that grows with the reservations the item holds). With them (``PoolLeases``, items and
requests in ``dynamodb_lease_items``):

- A writer (this store instance) reserves on its own shard item while its lease covers the tokens; when
  it does not, it takes a lease from the pool item (one conditional write: ``remaining >= L``) and raises
  its shard's ceiling by L. A lease is at most 1/8 of what the pool item has left (``LEASE_SHARE``) and at
  least ``LEASE_REQUESTS`` reservations of the size that asked, or twice the writer's last lease (a busy
  writer's leases grow); an unlimited pool grants ``UNLIMITED_LEASE``.
- **Capacity is never passed**: leases come out of ``remaining`` under its condition, and a shard holds
  only within its lease. A settle above its reservation that takes a shard past its lease grants the
  difference at once (``cover_request``), as an overdraft on the pool item itself is recorded.
- **A refusal still means the budget is spent**: when what the pool item has left is too little for a
  lease, the writer reserves on the pool item directly (the caller's ordinary path); a direct reserve
  that does not fit first reclaims every shard's unused lease (``reclaim``) and tries once more. A
  capacity change reclaims too, so a lowered (or first) capacity is not outrun by leases taken before.
- **The books stay exact**: the pool's views (``view``, ``list_views``) add every live shard's used,
  reserved, reservations and sweep markers to the pool item's; the sweep charges a shard's abandoned
  reservations like the pool item's, and folds a shard idle past the maximum age (``fold_idle``: close it,
  charge its ``used`` to the pool item and give back the rest of its grant in one conditional write on the
  grant, delete it). A grant whose shard never came to be is given back once its writer is that old.

What is given up: a reserve's answer on the lease path carries the pool item's totals as of this writer's
last lease, not the pool's, so callers that act on the totals (threshold alerts) reserve directly
(``leased=False``, the default).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..timeutil import epoch_seconds
from . import dynamodb_lease_items as lease
from .base import Holder, Pool, UnknownPool
from .dynamodb_items import (
    PK,
    SK,
    Item,
    get_n,
    get_s,
    opt_n,
    pool_from_item,
    pool_key,
    reservation_value,
)
from .dynamodb_pool_batch import Member, PoolBatches
from .dynamodb_primitives import ConditionFailed, DynamoDBPrimitives, StoreConflict

LEASE_SHARE = 8  # a lease takes at most 1/LEASE_SHARE of what the pool item has left
LEASE_REQUESTS = 16  # ... asking for this many reservations of the size that asked, or twice the last lease
UNLIMITED_LEASE = 10**12  # an unlimited pool's lease (cut back when the pool gets a capacity)
RECLAIM_SECONDS = 1.0  # a reclaim that found nothing, or a room too small for a lease, is trusted this long
MAX_HELD = 100_000  # reservation ids remembered until their settle (a forgotten one costs a Query)
_ATTEMPTS = 8


@dataclass
class Shard:
    """This writer's shard of one pool."""

    writer: str
    key: Item
    created: bool = False  # its item exists (the first lease raised its ceiling)
    leases: int = 0  # leases taken so far: a waiter that sees it grow retries without a lease of its own
    last: int = 0  # the size of the last one


@dataclass(frozen=True, slots=True)
class Room:
    """The pool item as this writer's last lease left it: its totals, and ``remaining`` net of leases."""

    pool: Pool
    remaining: int
    seen: float  # (monotonic) when: a room too small for a lease is asked again once it is this old


def _totals(item: Item, seen: float) -> Room:
    pool = replace(pool_from_item(item), reservations={}, holders={}, swept={})
    return Room(pool, get_n(item, "remaining"), seen)


def _writer(item: Item) -> str:
    return get_s(item, "writer")


def merged(pool_item: Item, shards: list[Item]) -> Pool:
    """The pool: its item plus every shard that still holds a grant in it (a shard whose grant is gone was
    folded into the item, or never got its lease). Read the shards BEFORE the item: a fold that lands
    between the two reads is then seen either as the shard (grant still there) or in the item, never both."""
    base = pool_from_item(pool_item)
    grants = lease.grants_of(pool_item)
    parts = [pool_from_item(s) for s in shards if _writer(s) in grants]
    if not parts:
        return base
    return replace(
        base,
        used=base.used + sum(p.used for p in parts),
        reserved=base.reserved + sum(p.reserved for p in parts),
        reservations={k: v for p in (base, *parts) for k, v in p.reservations.items()},
        holders={k: v for p in (base, *parts) for k, v in p.holders.items()},
        swept={k: v for p in (base, *parts) for k, v in p.swept.items()},
    )


class PoolLeases:
    """One store instance's leases and the pool views and sweep steps that know about shards."""

    def __init__(
        self,
        store: DynamoDBPrimitives,
        batches: PoolBatches,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._batches = batches  # one write in flight per shard; the ones meanwhile go together
        self._clock = clock
        self._monotonic = monotonic
        self._reclaimed: dict[tuple[str, str], float] = {}
        self._shards: dict[tuple[str, str], Shard] = {}
        self._rooms: dict[tuple[str, str], Room] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._held: dict[tuple[str, str, str], Item] = {}  # (tenant, pool, id) -> its shard, until settled

    # ------------------------------------------------------------------------------------ hot path

    async def reserve(
        self, tenant: str, pool: str, rid: str, tokens: int, at: str, holder: Holder
    ) -> Pool | None:
        """Hold ``tokens`` on this writer's shard, taking a lease when it has too little left. None when
        the pool item has too little left for a lease: the caller reserves on the pool item itself."""
        name = (tenant, pool)
        value = reservation_value(tokens, at, holder)
        for _ in range(_ATTEMPTS):
            shard = self._shards.get(name)
            if shard is None:
                if not await self._locked_lease(name, None, tokens):
                    return None
                continue
            leases = shard.leases
            request = lease.shard_reserve_request(shard.key, rid, tokens, at, value)
            alone = functools.partial(self._store.call, "update_item", **request)
            try:
                member = Member(rid, tokens, alone, at=at, holder=holder)
                await self._batches.write(shard.key, member, shard=True)
            except ConditionFailed as failed:  # (dynalite does not return the old item)
                old = failed.item or await self._store._get(shard.key)
                if old is None or "closed" in old:  # folded by the sweep: a new shard next
                    self._forget(name, shard)
                    continue
                if rid not in old.get("reservations", {}).get("M", {}):  # else: a retried reserve, held once
                    if not await self._locked_lease(name, leases, tokens):
                        return None
                    continue
            self._hold((tenant, pool, rid), shard.key)
            return self._answer(tenant, pool)
        return None  # the shard kept moving under it: the pool item's own path is always right

    def _hold(self, held: tuple[str, str, str], key: Item) -> None:
        if len(self._held) >= MAX_HELD:  # settles that never came: the oldest is found by a Query instead
            del self._held[next(iter(self._held))]
        self._held[held] = key

    def holding(self, tenant: str, pool: str, rid: str) -> Item | None:
        """The shard key reservation ``rid`` of this pool was held on by this writer (forgotten from now
        on). Keyed by the pool too: an id reused by another tenant never reaches this one's shard."""
        return self._held.pop((tenant, pool, rid), None)

    async def settled(self, settled: Pool, shard_key: Item, actual: int, reserved: int | None) -> Pool:
        """After a settle on a shard: a shard taken past its lease gets the difference granted (the pool
        item records the overdraft, as without leases); a settle above its reservation answers the
        pool's real totals (one read: the overdraft checks need them), any other the shard's."""
        room = settled.remaining
        if room is not None and room < 0:
            writer = shard_key[SK]["S"].rsplit("#", 1)[1]
            key = pool_key(settled.tenant, settled.pool)
            cover = lease.cover_request(key, writer, -room)
            if await self._store._conditional("update_item", **cover) is not None:
                extend = lease.extend_request(
                    shard_key, settled.tenant, settled.pool, writer, -room, first=False
                )
                await self._store._conditional("update_item", **extend)
        if reserved is not None and actual <= reserved:
            return settled
        view = await self.view(settled.tenant, settled.pool)
        return settled if view is None else replace(view, corrected=settled.corrected)

    async def _locked_lease(self, name: tuple[str, str], leases: int | None, tokens: int) -> bool:
        """One lease at a time per pool in this writer; a waiter whose shard got one meanwhile just
        retries its reserve (True). False: too little left for a lease."""
        async with self._locks.setdefault(name, asyncio.Lock()):
            shard = self._shards.get(name)
            if shard is not None and (leases is None or shard.leases != leases):
                return True
            return await self._lease(name, tokens)

    async def _lease(self, name: tuple[str, str], tokens: int) -> bool:
        tenant, pool = name
        shard = self._shards.get(name)
        if shard is None:
            writer = lease.new_writer(self._clock())
            shard = Shard(writer, lease.shard_key(tenant, pool, writer))
        key = pool_key(tenant, pool)
        want = max(tokens * LEASE_REQUESTS, 2 * shard.last)
        size = self._size(name, want, tokens)
        for _ in range(3):
            if size is None:
                return False
            try:
                grant = lease.grant_request(key, shard.writer, size, LEASE_SHARE, existing=shard.created)
                response = await self._store.call("update_item", **grant)
            except ConditionFailed as failed:
                old = failed.item or await self._store._get(key)
                if old is None:
                    raise UnknownPool(tenant, pool) from None  # only an operator creates pools
                if shard.created and shard.writer not in lease.grants_of(old):
                    self._forget(name, shard)  # folded by the sweep meanwhile: a new shard next
                    return True
                self._rooms[name] = _totals(old, self._monotonic())
                size = self._size(name, want, tokens)
                continue
            self._rooms[name] = _totals(response["Attributes"], self._monotonic())
            break
        else:
            return False
        extend = lease.extend_request(shard.key, tenant, pool, shard.writer, size, first=not shard.created)
        if await self._store._conditional("update_item", **extend) is None:
            # folded by the sweep meanwhile (or this id is spent): give the lease back, start anew
            await self._store._conditional("update_item", **lease.give_back_request(key, shard.writer, size))
            self._forget(name, shard)
            return True
        shard.created, shard.leases, shard.last = True, shard.leases + 1, size
        self._shards[name] = shard
        granted_under = self._rooms[name].pool.capacity
        now = await self._store._get(key)
        if now is not None and opt_n(now, "capacity") != granted_under:
            # The capacity changed between the grant and the extension: the change's reclaim may have
            # read the shard before the extension, so give back what this lease left unused now.
            await self._reclaim_shard(key, shard.key, None)
            self._rooms[name] = _totals(now, self._monotonic())
        return True

    def _size(self, name: tuple[str, str], want: int, tokens: int) -> int | None:
        """The lease to ask for, from the pool item as last seen (None: too little left for one)."""
        room = self._rooms.get(name)
        if room is None:
            return want  # the grant's condition tells
        if room.pool.capacity is None:
            return UNLIMITED_LEASE
        size = min(want, room.remaining // LEASE_SHARE)
        if size >= tokens:
            return size
        if self._monotonic() - room.seen >= RECLAIM_SECONDS:
            return want  # seen a while ago (a capacity raised or removed since?): the grant's condition tells
        return None

    def _answer(self, tenant: str, pool: str) -> Pool:
        room = self._rooms.get((tenant, pool))
        return room.pool if room is not None else Pool(tenant, pool, None, 0, 0)

    def _forget(self, name: tuple[str, str], shard: Shard) -> None:
        if self._shards.get(name) is shard:
            del self._shards[name]

    # ------------------------------------------------------------------------------ views, reclaim

    async def shards(self, tenant: str, pool: str | None = None) -> list[Item]:
        return await self._store._query(lease.shards_request(tenant, pool))

    async def view(self, tenant: str, pool: str) -> Pool | None:
        shards = await self.shards(tenant, pool)  # first: see ``merged``
        item = await self._store._get(pool_key(tenant, pool))
        return None if item is None else merged(item, shards)

    async def find(self, tenant: str, pool: str, rid: str) -> Item | None:
        """The key of the shard that holds reservation ``rid`` or its sweep marker (None: no shard does)."""
        for shard in await self.shards(tenant, pool):
            if any(rid in shard.get(name, {}).get("M", {}) for name in ("reservations", "swept")):
                return {PK: shard[PK], SK: shard[SK]}
        return None

    async def reclaim(self, tenant: str, pool: str, *, refused: bool = False) -> int:
        """Give the unused part of every open shard's lease back to the pool item; the tokens given.
        ``refused``: for a refused reserve; within ``RECLAIM_SECONDS`` of one that found nothing unused it
        is skipped (a tenant that keeps asking an exhausted pool gets its refusals without a Query each)."""
        name = (tenant, pool)
        if refused and self._monotonic() - self._reclaimed.get(name, -RECLAIM_SECONDS) < RECLAIM_SECONDS:
            return 0
        given = await self._reclaim(tenant, pool)
        if given:
            self._reclaimed.pop(name, None)
        else:
            self._reclaimed[name] = self._monotonic()
        return given

    async def _reclaim(self, tenant: str, pool: str) -> int:
        key = pool_key(tenant, pool)
        given = 0
        for found in await self.shards(tenant, pool):
            given += await self._reclaim_shard(key, {PK: found[PK], SK: found[SK]}, found)
        return given

    async def _reclaim_shard(self, key: Item, shard_key: Item, shard: Item | None) -> int:
        """Give the unused part of one shard's lease back (``shard``: as read; None: read it now)."""
        if shard is None:
            shard = await self._store._get(shard_key)
        for _ in range(_ATTEMPTS):  # a busy writer moves its shard between the read and the cut
            if shard is None or "closed" in shard or get_n(shard, "remaining") <= 0:
                return 0
            unused = get_n(shard, "remaining")
            cut = lease.cut_request(shard_key, unused)
            if await self._store._conditional("update_item", **cut) is not None:
                back = lease.give_back_request(key, _writer(shard), unused)
                if await self._store._conditional("update_item", **back) is not None:
                    return unused
                return 0
            shard = await self._store._get(shard_key)
        return 0

    # ----------------------------------------------------------------------------------- the sweep

    async def fold_idle(self, tenant: str, pool: str, older_than: str, at: str) -> int:
        """Fold every shard idle since before ``older_than`` (nothing held or marked in it) into the pool
        item, finish folds a crash left half done, and give back grants whose shard never came to be
        and whose writer is that old; a capped pool item left below zero while leases are out gets their
        unused parts back (a capacity change whose own reclaim a crash cut short). The shards folded."""
        key = pool_key(tenant, pool)
        shards = await self.shards(tenant, pool)
        item = await self._store._get(key)
        if item is None:
            return 0
        grants = lease.grants_of(item)
        cutoff = epoch_seconds(older_than)
        folded = 0
        for shard in shards:
            writer = _writer(shard)
            shard_key = {PK: shard[PK], SK: shard[SK]}
            if "closed" not in shard:
                touched = shard.get("touched", {}).get("S", "")
                idle = touched < older_than if touched else lease.writer_born(writer) < cutoff
                if not idle or get_n(shard, "reserved") or shard["reservations"]["M"] or shard["swept"]["M"]:
                    continue
                close = lease.close_request(shard_key, touched, get_n(shard, "used"), at)
                if await self._store._conditional("update_item", **close) is None:
                    continue  # its writer came back meanwhile
            if writer in grants:
                await self._fold(key, writer, grants[writer], get_n(shard, "used"))
            await self._store._conditional("delete_item", **lease.delete_closed_request(shard_key))
            folded += 1
        present = {_writer(s) for s in shards}
        for writer, granted in grants.items():
            if writer not in present and lease.writer_born(writer) < cutoff:
                await self._store._conditional(
                    "update_item", **lease.drop_grant_request(key, writer, granted)
                )
        if "capacity" in item and get_n(item, "remaining") < 0 and grants:
            await self._reclaim(tenant, pool)  # e.g. a capacity change whose reclaim a crash cut short
        return folded

    async def _fold(self, key: Item, writer: str, granted: int, used: int) -> None:
        """Charge a closed shard's ``used`` and give back the rest of its grant; a grant that grew meanwhile
        (its writer leased again before it learnt the shard was closed) is read again."""
        for _ in range(_ATTEMPTS):
            fold = lease.fold_request(key, writer, granted, used)
            if await self._store._conditional("update_item", **fold) is not None:
                return
            item = await self._store._get(key)
            current = None if item is None else lease.grants_of(item).get(writer)
            if current is None:
                return  # folded already
            granted = current
        raise StoreConflict(f"could not fold lease {writer}")
