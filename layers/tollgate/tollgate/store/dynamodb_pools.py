"""The DynamoDB token pools: the pool item, its group commit, its escrow leases and its sweep.

Pool item: ``capacity`` (absent: unlimited), ``used``, ``reserved`` (named and anonymous), ``anon_reserved``,
``remaining`` = (capacity or 0) - used - reserved - the leases granted (kept by every write, negative for
unlimited pools), ``reservations``, a map id -> {tokens, at, key_id, provider, model}, ``swept``
(``dynamodb_sweep``) and one ``lease#<writer>`` per writer holding a lease (``dynamodb_leases``).
Reserve = one UpdateItem conditioned on the pool existing and ``attribute_not_exists(capacity) OR
remaining >= :e``; only an operator creates a pool (a conditional put: ``create_pool``, ``set_capacity``).
Settle = one UpdateItem that REMOVEs the reservation, conditioned on it still holding the tokens the caller
reserved (exactly once; no read); a caller that does not know them, or whose reservation the sweep took,
reads the reservation and its marker first (one consistent GetItem). A reserve that may be leased
(``leased=True``: the caller reads nothing of the answer's totals) goes to this writer's shard instead, and
its settle follows it there.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import TYPE_CHECKING

from . import dynamodb_items as items
from . import dynamodb_lease_items as lease
from . import dynamodb_pool_batch as pool_batch
from . import dynamodb_sweep as sweeping
from .base import NOBODY, BeforeCharge, Holder, Overdrawn, Pool, Reservation, UnknownPool
from .dynamodb_items import Item, Request, get_n, get_s, opt_n
from .dynamodb_leases import PoolLeases, merged
from .dynamodb_primitives import ConditionFailed, DynamoDBPrimitives, StoreConflict

_ATTEMPTS = 20


class DynamoDBPools(DynamoDBPrimitives):
    """Mixed into ``DynamoDBStore``: the ``BudgetStore`` token-pool methods."""

    if TYPE_CHECKING:
        _pool_batches: pool_batch.PoolBatches
        _leases: PoolLeases

    def _pool_parts(self) -> tuple[pool_batch.PoolBatches, PoolLeases]:
        """The group commit and the leases of this store instance (built in its ``__init__``)."""
        batches = pool_batch.PoolBatches(self._pool_batch_write, items.pool_from_item)
        return batches, PoolLeases(self, batches)

    async def _create_pool(self, tenant: str, pool: str, capacity: int | None) -> bool:
        """Put an empty pool unless one exists (one conditional put); whether this call created it."""
        item = items.new_pool_item(tenant, pool, capacity)
        return await self._conditional("put_item", Item=item, **items.if_absent()) is not None

    async def set_capacity(self, tenant: str, pool: str, tokens: int | None) -> Pool:
        for _ in range(_ATTEMPTS):
            item = await self._get(items.pool_key(tenant, pool))
            if item is None:
                if await self._create_pool(tenant, pool, tokens):
                    return items.pool_from_item(items.new_pool_item(tenant, pool, tokens))
                continue
            old = opt_n(item, "capacity")
            request = items.capacity_request(tenant, pool, old, tokens)
            if await self._conditional("update_item", **request) is not None:
                # leases taken before must not outrun the new capacity
                await self._leases.reclaim(tenant, pool)
                changed = await self._leases.view(tenant, pool)
                if changed is not None:
                    return changed
        raise StoreConflict(f"could not set the capacity of pool {tenant}/{pool}")

    async def create_pool(self, tenant: str, pool: str) -> bool:
        return await self._create_pool(tenant, pool, None)

    async def reserve(
        self,
        tenant: str,
        pool: str,
        reservation_id: str,
        tokens: int,
        at: str,
        holder: Holder = NOBODY,
        *,
        totals_only: bool = False,  # the update returns the item anyway: nothing to save
        leased: bool = False,
    ) -> Pool:
        if leased:
            held = await self._leases.reserve(tenant, pool, reservation_id, tokens, at, holder)
            if held is not None:
                return held
        try:
            return await self._reserve_on_pool(tenant, pool, reservation_id, tokens, at, holder)
        except Overdrawn as refused:  # leases held elsewhere may cover it: take their unused part back
            if not refused.leased or not await self._leases.reclaim(tenant, pool, refused=True):
                raise
        return await self._reserve_on_pool(tenant, pool, reservation_id, tokens, at, holder)

    async def _reserve_on_pool(
        self, tenant: str, pool: str, reservation_id: str, tokens: int, at: str, holder: Holder
    ) -> Pool:
        alone = functools.partial(self._reserve_alone, tenant, pool, reservation_id, tokens, at, holder)
        member = pool_batch.Member(reservation_id, tokens, alone, at=at, holder=holder)
        result: Pool = await self._pool_batches.write(items.pool_key(tenant, pool), member)
        return result

    async def _pool_batch_write(self, request: Request) -> Item | None:
        response = await self._conditional("update_item", **request)
        return None if response is None else response["Attributes"]

    async def _reserve_alone(
        self, tenant: str, pool: str, reservation_id: str, tokens: int, at: str, holder: Holder
    ) -> Pool:
        key = items.pool_key(tenant, pool)
        request = items.reserve_request(key, reservation_id, tokens, at, holder)
        for _ in range(_ATTEMPTS):
            try:
                response = await self.call("update_item", **request)
                return items.pool_from_item(response["Attributes"])
            except ConditionFailed as failed:
                old = failed.item or await self._get(key)
            if old is None:
                raise UnknownPool(tenant, pool)  # only an operator creates pools
            if reservation_id in old.get("reservations", {}).get("M", {}):
                return items.pool_from_item(old)  # a retried reserve: already held, once
            if "capacity" in old and get_n(old, "remaining") < tokens:
                raise Overdrawn(max(get_n(old, "remaining"), 0), sum(lease.grants_of(old).values()))
            # The old item came from a later read and the reservation fits now: try again.
        raise StoreConflict(f"could not reserve in pool {tenant}/{pool}")

    async def settle(
        self,
        tenant: str,
        pool: str,
        reservation_id: str,
        actual: int,
        *,
        reserved: int | None = None,
        totals_only: bool = False,  # as for reserve
    ) -> Pool | None:
        shard = self._leases.holding(tenant, pool, reservation_id)
        if shard is not None:
            return await self._settle_on_shard(shard, reservation_id, actual, reserved)
        key = items.pool_key(tenant, pool)
        result = await self._settle_batched(key, reservation_id, actual, reserved, shard=False)
        if result is None:  # not on the pool item: held on a shard by another writer (a hoosh report)?
            shard = await self._leases.find(tenant, pool, reservation_id)
            if shard is not None:
                return await self._settle_on_shard(shard, reservation_id, actual, reserved)
        return result

    async def _settle_on_shard(self, shard: Item, rid: str, actual: int, reserved: int | None) -> Pool | None:
        settled = await self._settle_batched(shard, rid, actual, reserved, shard=True)
        return None if settled is None else await self._leases.settled(settled, shard, actual, reserved)

    async def _settle_batched(
        self, key: Item, rid: str, actual: int, reserved: int | None, *, shard: bool
    ) -> Pool | None:
        """Settle on a pool item or a shard (``key``) through its group commit; a settle that does not know
        its tokens reads them first, alone."""
        alone = functools.partial(self._settle_at, key, rid, actual, reserved)
        if reserved is None:
            return await alone()
        member = pool_batch.Member(rid, reserved, alone, actual=actual)
        result: Pool | None = await self._pool_batches.write(key, member, shard=shard)
        return result

    async def _settle_at(
        self, key: Item, reservation_id: str, actual: int, reserved: int | None
    ) -> Pool | None:
        """Settle on a pool item or a shard (``key``)."""
        if reserved is not None:  # the steady state: the update carries the condition, no read first
            request = items.settle_request(key, reservation_id, reserved, actual)
            response = await self._conditional("update_item", **request)
            if response is not None:
                return items.pool_from_item(response["Attributes"])
        item = await self._get(key, **sweeping.settle_projection(reservation_id)) or {}
        held = item.get("reservations", {}).get("M", {}).get(reservation_id)
        marker = item.get("swept", {}).get("M", {}).get(reservation_id)
        if held is not None:
            tokens = get_n(held["M"], "tokens")
            request = items.settle_request(key, reservation_id, tokens, actual)
        elif marker is not None:
            charged = get_n(marker["M"], "tokens")
            request = sweeping.correct_request(key, reservation_id, charged, actual)
        else:
            return None
        response = await self._conditional("update_item", **request)
        if response is None:
            return None
        settled = items.pool_from_item(response["Attributes"])
        return settled if marker is None else replace(settled, corrected=(charged, get_s(marker["M"], "at")))

    async def settle_anonymous(self, tenant: str, pool: str, reserved: int, actual: int) -> Pool | None:
        request = items.settle_anonymous_request(tenant, pool, reserved, actual)
        response = await self._conditional("update_item", **request)
        return None if response is None else items.pool_from_item(response["Attributes"])

    async def get_pool(self, tenant: str, pool: str) -> Pool | None:
        return await self._leases.view(tenant, pool)

    async def list_pools(self, tenant: str | None = None) -> list[Pool]:
        return sorted(
            (merged(item, shards) for item, shards in await self._pool_items(tenant)),
            key=lambda p: (p.tenant, p.pool),
        )

    async def _pool_items(self, tenant: str | None = None) -> list[tuple[Item, list[Item]]]:
        """Each pool item with its shards (the shards read first: see ``dynamodb_leases.merged``)."""
        if tenant is None:
            entries = await self._query(items.directory_request(items.POOLS_DIR))
            tenants = sorted({e[items.PK]["S"].removeprefix("POOL#") for e in entries})
            shards = [s for name in tenants for s in await self._leases.shards(name)]
            keys = [{items.PK: e[items.PK], items.SK: e[items.SK]} for e in entries]
            found = await self._batch_get(keys)
        else:
            pk = items.pool_key(tenant, "")[items.PK]
            request = items.expression(values={":pk": pk}, KeyConditionExpression="#pk = :pk")
            every = await self._query({**request, "ConsistentRead": True})  # LEASE# sorts before POOL#
            shards = [i for i in every if lease.is_shard(i)]
            found = [i for i in every if items.SK in i and i[items.SK]["S"].startswith("POOL#")]
        by_pool: dict[tuple[str, str], list[Item]] = {}
        for shard in shards:
            by_pool.setdefault((get_s(shard, "tenant"), get_s(shard, "pool")), []).append(shard)
        return [(i, by_pool.get((get_s(i, "tenant"), get_s(i, "pool")), [])) for i in found]

    async def sweep_reservations(
        self, older_than: str, at: str, before_charge: BeforeCharge | None = None
    ) -> list[Reservation]:
        swept: list[Reservation] = []
        for item, shards in await self._pool_items():
            pool = items.pool_from_item(item)
            for part, key in [(item, items.pool_key(pool.tenant, pool.pool))] + [
                (s, {items.PK: s[items.PK], items.SK: s[items.SK]}) for s in shards
            ]:
                swept.extend(
                    await self._sweep_item(items.pool_from_item(part), key, older_than, at, before_charge)
                )
            await self._leases.fold_idle(pool.tenant, pool.pool, older_than, at)
        return swept

    async def _sweep_item(
        self, pool: Pool, key: Item, older_than: str, at: str, before_charge: BeforeCharge | None
    ) -> list[Reservation]:
        """The sweep of one pool item or shard: drop its old markers, then charge its old reservations."""
        for rid, (_, marked) in sorted(pool.swept.items()):  # first: this sweep's own markers stay
            if marked < older_than:
                await self._conditional("update_item", **sweeping.drop_marker_request(key, rid, marked))
        old = [
            Reservation(pool.tenant, pool.pool, rid, tokens, held_at, pool.holders.get(rid, NOBODY))
            for rid, (tokens, held_at) in sorted(pool.reservations.items(), key=lambda r: r[1][1])
            if held_at < older_than
        ]
        if old:
            await self._conditional("update_item", **sweeping.swept_map_request(key))
        swept: list[Reservation] = []
        for reservation in old:
            if before_charge is not None:
                await before_charge(reservation)
            holder = reservation.holder.key_id
            request = sweeping.sweep_request(key, reservation.reservation_id, reservation.tokens, at, holder)
            if await self._conditional("update_item", **request) is not None:
                swept.append(reservation)
        return swept
