"""The DynamoDB ``RollupStore``: each tenant x day x key x provider/model cell is up to ``ROLLUP_SHARDS``
counter items, summed when read.

    item          PK                 SK
    rollup shard  ROLLUP#<tenant>    <day>#<digest>        (shard 0; every row written before sharding)
                  ROLLUP#<tenant>    <day>#<digest>#<k>    (shards k = 1 .. ROLLUP_SHARDS - 1)

``<digest>`` is the sha256 of [key_id, provider, model], 32 hex. Each request adds to one shard of its cell,
picked at random, with one UpdateItem ``ADD`` (atomic, no condition, no read; ADD commutes, so any shard
will do). One item of a busy tenant would serialize every gateway process's adds (dynalite's per-item
lock; DynamoDB's ~1,000 writes/s per item); eight spread them. The cell's names are attributes of every
shard, so the sort key only has to be unique and start with ``<day>#``: a range of days is one Query
(``SK BETWEEN <since> AND <until>``; every shard key of day D sorts after ``D`` and before ``D+1``, and
before ``LAST_DAY``), and ``list_rollups`` sums a cell's shards into one row (at most ``ROLLUP_SHARDS``
items read per cell).
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import TYPE_CHECKING

from .dynamodb_items import PK, SK, Item, Request, expression, get_n, get_s, n, s
from .dynamodb_primitives import DynamoDBPrimitives
from .rollup_base import COUNTERS, Rollup, by_cell, group_row

if TYPE_CHECKING:
    from collections.abc import Awaitable, Iterable

_CELL = ("tenant", "day", "key_id", "provider", "model")
_NAMES = {f"#r_{name}": name for name in (*_CELL, *COUNTERS)}
LAST_DAY = "9999-12-31~"
ROLLUP_SHARDS = 8


def rollup_key(change: Rollup, shard: int = 0) -> Item:
    """The key of ``change``'s cell's shard ``shard``; shard 0 is the unsharded key rows had before."""
    names = json.dumps([change.key_id, change.provider, change.model], separators=(",", ":"))
    digest = hashlib.sha256(names.encode()).hexdigest()[:32]
    suffix = f"#{shard}" if shard else ""
    return {PK: s(f"ROLLUP#{change.tenant}"), SK: s(f"{change.day}#{digest}{suffix}")}


def add_request(change: Rollup, shard: int) -> Request:
    values = {f":r_{name}": s(getattr(change, name)) for name in _CELL}
    values.update({f":r_{name}": n(value) for name, value in change.counts().items()})
    assign = ", ".join(f"#r_{name} = :r_{name}" for name in _CELL)
    add = ", ".join(f"#r_{name} :r_{name}" for name in COUNTERS)
    return expression(
        key=rollup_key(change, shard), values=values, names=_NAMES, UpdateExpression=f"SET {assign} ADD {add}"
    )


def range_request(tenant: str, since_day: str | None, until_day: str | None) -> Request:
    values = {":pk": s(f"ROLLUP#{tenant}"), ":lo": s(since_day or "0"), ":hi": s(until_day or LAST_DAY)}
    request = expression(values=values, KeyConditionExpression="#pk = :pk AND #sk BETWEEN :lo AND :hi")
    return {**request, "ConsistentRead": True}


def rollup_from_item(item: Item) -> Rollup:
    cell = [get_s(item, name) for name in _CELL]
    return Rollup.of(cell, [get_n(item, name) if name in item else 0 for name in COUNTERS])


def summed(shards: Iterable[Rollup]) -> list[Rollup]:
    """One row per cell, the sum of its shards, sorted by cell."""
    return sorted(by_cell(shards).values(), key=lambda r: r.cell)


class DynamoDBRollups(DynamoDBPrimitives):
    """Mixed into ``DynamoDBStore``: the rollup methods, on the store's own primitives."""

    if TYPE_CHECKING:

        def audit_tenants(self) -> Awaitable[list[str]]: ...

    async def add_rollup(self, change: Rollup) -> None:
        shard = random.randrange(ROLLUP_SHARDS)  # noqa: S311 - load spreading, not security
        await self.call("update_item", **add_request(change, shard))

    async def list_rollups(
        self, tenant: str | None, since_day: str | None = None, until_day: str | None = None
    ) -> list[Rollup]:
        if since_day is not None and until_day is not None and since_day >= until_day:
            return []
        tenants = [tenant] if tenant is not None else await self.audit_tenants()
        found: list[Rollup] = []
        for name in tenants:
            request = range_request(name, since_day, until_day)
            found.extend(rollup_from_item(item) for item in await self._query(request))
        return summed(found)

    async def rollup_totals(
        self, tenant: str | None, since_day: str | None, until_day: str | None, group_by: str | None
    ) -> list[Rollup]:
        """Each Query page folded into its groups as it arrives: memory is one row per group, whatever
        the number of days, keys and shards read."""
        if since_day is not None and until_day is not None and since_day >= until_day:
            return []
        tenants = [tenant] if tenant is not None else await self.audit_tenants()
        groups: dict[tuple[str, str, str, str, str], Rollup] = {}
        for name in tenants:
            async for page in self._query_pages(range_request(name, since_day, until_day)):
                for item in page:
                    row = group_row(rollup_from_item(item), group_by)
                    have = groups.get(row.cell)
                    groups[row.cell] = row if have is None else have.plus(row)
        return sorted(groups.values(), key=lambda r: r.cell)
