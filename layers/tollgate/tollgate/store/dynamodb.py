"""The DynamoDB backend: one table, every invariant one conditional write, no transactions.

Item layout (single table, key schema and indexes in ``template.yaml`` / ``table.json``)::

    item          PK                 SK                  GSI1PK / GSI1SK       GSI2PK / GSI2SK
    key           KEY#<key_hash>     KEY                 KEYS / <key_id>       -
    pool          POOL#<tenant>      POOL#<pool>         POOLS / <tenant>#<pool>
    session       SESSION#<tenant>   SESSION#<id>        -                     -       (TTL: expires_at_epoch)
    response      RESPONSE#<tenant>  RESPONSE#<id>       -                     -       (TTL)
    audit head    AUDIT#<tenant>     HEAD                AUDIT / <tenant>      -       (legacy chain)
    audit entry   AUDIT#<tenant>     SEQ#<seq:012d>      AUDIT / <tenant> (seq 1 only)
                                                                               COST#<tenant> / <at>#<seq:012d>
    segment head  AUDIT#<tenant>     HEAD#<segment>      AUDIT / <tenant> (registry only)
    segment entry AUDIT#<tenant>     SEG#<seg>#<seq:012d>  AUDIT / <tenant> (registry seq 1 only)
                                                     COST#<tenant> / <at>#<seg>#<seq:012d> (not the registry)
    cost rollup   ROLLUP#<tenant>    <day>#<cell hash>[#<k>]  -                -       (k: shard 1-7)

GSI1 (KEYS_ONLY) is a directory of the few items listed across tenants: keys (and a key by its id), pools,
and the tenants that have an audit chain. It projects keys only, so the hot updates of pool and head items
never write to it; listings read the items themselves with a consistent BatchGetItem. GSI2 (ALL) holds the
cost records (= audit entries, written once) by tenant and time; ``list_costs`` queries it per tenant (the
tenants come from GSI1), never a Scan. Index reads are eventually consistent: a new key is revocable by id,
and counts for ``any_keys``, a moment after it is created. Only ``sweep_sessions`` Scans (TTL's job here).

Pool item: ``capacity`` (absent: unlimited), ``used``, ``reserved`` (named and anonymous), ``anon_reserved``,
``remaining`` = (capacity or 0) - used - reserved (kept by every write, negative for unlimited pools),
``reservations``, a map id -> {tokens, at, key_id, provider, model}, and ``swept`` (``dynamodb_sweep``).
Reserve = one UpdateItem conditioned on the pool existing and ``attribute_not_exists(capacity) OR
remaining >= :e``; only an operator creates a pool (a conditional put: ``create_pool``, ``set_capacity``).
Settle = one UpdateItem that REMOVEs the reservation, conditioned on it still holding the tokens the caller
reserved (exactly once; no read); a caller that does not know them, or whose reservation the sweep took,
reads the reservation and its marker first (one consistent GetItem). Open reservations share the pool
item's 400 KB (about 100 bytes each: thousands at once per pool).

boto3 is imported, and the client built, on first use; every call runs on this store's own bounded thread
pool, never the loop's default executor. The endpoint comes only from boto3's own configuration
(``AWS_ENDPOINT_URL_DYNAMODB``), so tests point it at moto or dynalite without any switch of ours.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from ..aws import LazyClient
from ..timeutil import epoch_seconds, now_str
from . import dynamodb_items as items
from . import dynamodb_pool_batch as pool_batch
from . import dynamodb_segments as segments
from . import dynamodb_sweep as sweeping
from .base import (
    NOBODY,
    ApiKey,
    AuditEntry,
    AuditHead,
    BeforeCharge,
    Holder,
    KeyExists,
    Overdrawn,
    Pool,
    Reservation,
    UnknownPool,
)
from .dynamodb_alerts import DynamoDBAlerts
from .dynamodb_budgets import DynamoDBBudgets
from .dynamodb_items import Item, Request, expression, get_n, get_s, opt_n
from .dynamodb_limits import DynamoDBLimits
from .dynamodb_responses import DynamoDBResponses
from .dynamodb_rollups import DynamoDBRollups
from .dynamodb_rotation import DynamoDBRotation
from .table import create_table_request, ttl_attribute

__all__ = ["DynamoDBStore", "StoreConflict"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_ATTEMPTS = 20
_TTL_UNSUPPORTED = {"UnknownOperationException", "NotImplemented"}  # dynalite: the former


class StoreConflict(RuntimeError):
    """A write kept losing to concurrent writers, or DynamoDB kept throttling a batch read."""


class _ConditionFailed(Exception):
    """A ConditionalCheckFailedException; ``item`` is the old item when the server returned it."""

    def __init__(self, item: Item | None) -> None:
        super().__init__("condition failed")
        self.item = item


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError`` (None for anything else)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return str(code) if code else None


class DynamoDBStore(
    DynamoDBRollups, DynamoDBResponses, DynamoDBAlerts, DynamoDBBudgets, DynamoDBLimits, DynamoDBRotation
):
    """Every ``Store`` method over boto3's low-level DynamoDB client."""

    def __init__(self, table: str, *, region: str, threads: int = 16, client: Any | None = None) -> None:
        self.table = table
        self._region = region
        self._threads = threads
        self._boto = LazyClient(
            "dynamodb",
            region=region,
            client=client,
            max_pool_connections=threads,
            retries={"mode": "standard", "total_max_attempts": 3},
        )
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dynamodb")
        self._closed = False
        self._pool_batches = pool_batch.PoolBatches(self._pool_batch_write, items.pool_from_item)

    # ---------------------------------------------------------------------------------------- plumbing

    def client(self) -> Any:
        """The low-level client, built once on first use (call it on a pool thread: it may block)."""
        return self._boto.get()

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn`` on the store's own pool (never the loop's default executor)."""
        if self._closed:
            raise RuntimeError("the DynamoDB store is closed")
        return await asyncio.wrap_future(self._pool.submit(fn, *args))

    def _invoke(self, operation: str, request: Request) -> dict[str, Any]:
        try:
            response: dict[str, Any] = getattr(self.client(), operation)(**request)
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                old = getattr(exc, "response", {}).get("Item")
                raise _ConditionFailed(old) from None
            raise
        return response

    async def call(self, operation: str, **request: Any) -> dict[str, Any]:
        """One DynamoDB operation on this store's table; a failed condition raises ``_ConditionFailed``."""
        return await self.run(self._invoke, operation, {"TableName": self.table, **request})

    async def _conditional(self, operation: str, **request: Any) -> dict[str, Any] | None:
        try:
            return await self.call(operation, **request)
        except _ConditionFailed:
            return None

    async def _get(self, key: Item, **request: Any) -> Item | None:
        item: Item | None = (await self.call("get_item", Key=key, ConsistentRead=True, **request)).get("Item")
        return item

    async def _query(
        self, request: Request, limit: int | None = None, operation: str = "query"
    ) -> list[Item]:
        """Every page of a Query (or Scan), up to ``limit`` items."""
        found: list[Item] = []
        while limit is None or len(found) < limit:
            page = dict(request) if limit is None else {**request, "Limit": limit - len(found)}
            response = await self.call(operation, **page)
            found.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            request = {**request, "ExclusiveStartKey": response["LastEvaluatedKey"]}
        return found

    async def _batch_get(self, keys: list[Item]) -> list[Item]:
        found: list[Item] = []
        for start in range(0, len(keys), 100):
            pending: dict[str, Any] = {"Keys": keys[start : start + 100], "ConsistentRead": True}
            for attempt in range(_ATTEMPTS):
                request = {"RequestItems": {self.table: pending}}
                response = await self.run(self._invoke, "batch_get_item", request)
                found.extend(response.get("Responses", {}).get(self.table, []))
                pending = response.get("UnprocessedKeys", {}).get(self.table, {})
                if not pending.get("Keys"):
                    break
                await asyncio.sleep(0.01 * 2 ** min(attempt, 6))
            else:
                raise StoreConflict("BatchGetItem left keys unprocessed (throttled)")
        return found

    async def _listed(self, name: str) -> list[Item]:
        """The items of one GSI1 directory, read with a consistent BatchGetItem."""
        entries = await self._query(items.directory_request(name))
        return await self._batch_get([{items.PK: e[items.PK], items.SK: e[items.SK]} for e in entries])

    # ------------------------------------------------------------------------------------------ schema

    async def init_schema(self) -> None:
        """Create the table from ``table.json`` if missing, wait until it is active, enable TTL."""
        try:
            await self.run(self._invoke, "create_table", create_table_request(self.table))
            log.info("creating DynamoDB table %s", self.table)
        except Exception as exc:
            if error_code(exc) != "ResourceInUseException":
                raise
        await self.run(self._wait_active)
        await self._enable_ttl()

    def _wait_active(self) -> None:
        waiter = self.client().get_waiter("table_exists")
        waiter.wait(TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 300})

    async def _enable_ttl(self) -> None:
        attribute = ttl_attribute()
        try:
            described = await self.call("describe_time_to_live")
            status = described.get("TimeToLiveDescription", {})
            if status.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
                return
            spec = {"AttributeName": attribute, "Enabled": True}
            await self.call("update_time_to_live", TimeToLiveSpecification=spec)
        except Exception as exc:
            if error_code(exc) not in _TTL_UNSUPPORTED:
                raise
            log.warning("this DynamoDB does not support TTL (%s); expired sessions stay until swept", exc)

    async def aclose(self) -> None:
        """Shut the pool down (queued calls are cancelled) and close a client this store built."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._boto.close()

    # -------------------------------------------------------------------------------------------- keys

    async def create_key(self, key: ApiKey) -> None:
        try:
            await self.call("put_item", Item=items.key_item(key), **items.if_absent())
        except _ConditionFailed:
            raise KeyExists(f"a key with this hash already exists ({key.key_id})") from None

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        response = await self.call("get_item", Key=items.key_key(key_hash))  # hot path: eventual read
        return items.key_from_item(response["Item"]) if "Item" in response else None

    async def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        keys = [items.key_from_item(item) for item in await self._listed(items.KEYS_DIR)]
        chosen = [k for k in keys if tenant is None or k.tenant == tenant]
        return sorted(chosen, key=lambda k: (k.created_at, k.key_id))

    async def revoke_key(self, key_id: str, at: str) -> ApiKey | None:
        for entry in await self._query(items.directory_request(items.KEYS_DIR, key_id)):
            request = items.revoke_request({items.PK: entry[items.PK], items.SK: entry[items.SK]}, at)
            response = await self._conditional("update_item", **request)
            if response is not None:
                await self.revoke_retired(response["Attributes"], at)  # old secrets still in their grace
                return items.key_from_item(response["Attributes"])
        return None

    async def any_keys(self) -> bool:
        return bool(await self._query(items.directory_request(items.KEYS_DIR), limit=1))

    # ----------------------------------------------------------------------------------------- budgets

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
            response = await self._conditional("update_item", **request)
            if response is not None:
                return items.pool_from_item(response["Attributes"])
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
    ) -> Pool:
        alone = functools.partial(self._reserve_alone, tenant, pool, reservation_id, tokens, at, holder)
        member = pool_batch.Member(reservation_id, tokens, alone, at=at, holder=holder)
        result: Pool = await self._pool_batches.write(tenant, pool, member)
        return result

    async def _pool_batch_write(self, request: Request) -> Item | None:
        response = await self._conditional("update_item", **request)
        return None if response is None else response["Attributes"]

    async def _reserve_alone(
        self, tenant: str, pool: str, reservation_id: str, tokens: int, at: str, holder: Holder
    ) -> Pool:
        request = items.reserve_request(tenant, pool, reservation_id, tokens, at, holder)
        for _ in range(_ATTEMPTS):
            try:
                response = await self.call("update_item", **request)
                return items.pool_from_item(response["Attributes"])
            except _ConditionFailed as failed:
                old = failed.item or await self._get(items.pool_key(tenant, pool))
            if old is None:
                raise UnknownPool(tenant, pool)  # only an operator creates pools
            if reservation_id in old.get("reservations", {}).get("M", {}):
                return items.pool_from_item(old)  # a retried reserve: already held, once
            if "capacity" in old and get_n(old, "remaining") < tokens:
                raise Overdrawn(max(get_n(old, "remaining"), 0))
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
        alone = functools.partial(self._settle_alone, tenant, pool, reservation_id, actual, reserved)
        if reserved is None:
            return await alone()
        member = pool_batch.Member(reservation_id, reserved, alone, actual=actual)
        result: Pool | None = await self._pool_batches.write(tenant, pool, member)
        return result

    async def _settle_alone(
        self, tenant: str, pool: str, reservation_id: str, actual: int, reserved: int | None
    ) -> Pool | None:
        if reserved is not None:  # the steady state: the update carries the condition, no read first
            request = items.settle_request(tenant, pool, reservation_id, reserved, actual)
            response = await self._conditional("update_item", **request)
            if response is not None:
                return items.pool_from_item(response["Attributes"])
        key = items.pool_key(tenant, pool)
        item = await self._get(key, **sweeping.settle_projection(reservation_id)) or {}
        held = item.get("reservations", {}).get("M", {}).get(reservation_id)
        marker = item.get("swept", {}).get("M", {}).get(reservation_id)
        if held is not None:
            tokens = get_n(held["M"], "tokens")
            request = items.settle_request(tenant, pool, reservation_id, tokens, actual)
        elif marker is not None:
            charged = get_n(marker["M"], "tokens")
            request = sweeping.correct_request(tenant, pool, reservation_id, charged, actual)
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
        item = await self._get(items.pool_key(tenant, pool))
        return None if item is None else items.pool_from_item(item)

    async def list_pools(self, tenant: str | None = None) -> list[Pool]:
        if tenant is None:
            found = await self._listed(items.POOLS_DIR)
        else:
            pk = items.pool_key(tenant, "")[items.PK]
            request = expression(values={":pk": pk}, KeyConditionExpression="#pk = :pk")
            found = await self._query({**request, "ConsistentRead": True})
        return sorted((items.pool_from_item(i) for i in found), key=lambda p: (p.tenant, p.pool))

    async def sweep_reservations(
        self, older_than: str, at: str, before_charge: BeforeCharge | None = None
    ) -> list[Reservation]:
        swept: list[Reservation] = []
        for pool in await self.list_pools():
            for rid, (_, marked) in sorted(pool.swept.items()):  # first: this sweep's own markers stay
                if marked < older_than:
                    request = sweeping.drop_marker_request(pool.tenant, pool.pool, rid, marked)
                    await self._conditional("update_item", **request)
            old = [
                Reservation(pool.tenant, pool.pool, rid, tokens, held_at, pool.holders.get(rid, NOBODY))
                for rid, (tokens, held_at) in sorted(pool.reservations.items(), key=lambda r: r[1][1])
                if held_at < older_than
            ]
            if old:
                await self._conditional("update_item", **sweeping.swept_map_request(pool.tenant, pool.pool))
            for reservation in old:
                if before_charge is not None:
                    await before_charge(reservation)
                request = sweeping.sweep_request(
                    pool.tenant, pool.pool, reservation.reservation_id, reservation.tokens, at
                )
                if await self._conditional("update_item", **request) is not None:
                    swept.append(reservation)
        return swept

    # ---------------------------------------------------------------------------------------- sessions

    async def load_session(self, tenant: str, session_id: str) -> tuple[list[dict[str, Any]], int]:
        item = await self._get(items.session_key(tenant, session_id))
        if item is None:
            return [], 0
        messages, version, expires_at = items.session_from_item(item)
        if expires_at <= now_str():  # TTL deletes late: an expired item may still be there
            return [], 0
        return messages, version

    async def save_session(
        self, tenant: str, session_id: str, messages: list[dict[str, Any]], version: int, expires_at: str
    ) -> bool:
        epoch = epoch_seconds(expires_at)
        item = items.session_item(tenant, session_id, messages, version + 1, expires_at, epoch)
        request = items.save_session_condition(version, now_str())
        return await self._conditional("put_item", Item=item, **request) is not None

    async def delete_session(self, tenant: str, session_id: str) -> bool:
        key = items.session_key(tenant, session_id)
        response = await self.call("delete_item", Key=key, ReturnValues="ALL_OLD")
        return "Attributes" in response

    async def sweep_sessions(self, now: str) -> int:
        """A Scan for expired sessions: DynamoDB's TTL does this job in production."""
        swept = 0
        for found in await self._query(items.expired_sessions_scan(now), operation="scan"):
            delete = items.expired_condition(now)  # unless saved again meanwhile
            if await self._conditional("delete_item", Key=found, **delete) is not None:
                swept += 1
        return swept

    # ------------------------------------------------------------------------------------------- audit

    async def audit_head(self, tenant: str, *, segment: str = "") -> AuditHead | None:
        item = await self._get(items.head_key(tenant, segment))
        return None if item is None else items.head_from_item(item)

    async def audit_heads(self, tenant: str) -> dict[str, AuditHead]:
        found = await self._query(segments.heads_request(tenant))
        return {get_s(i, "segment") if "segment" in i else "": items.head_from_item(i) for i in found}

    async def put_audit_entry(self, entry: AuditEntry) -> bool:
        item = items.entry_item(entry)
        return await self._conditional("put_item", Item=item, **items.if_absent()) is not None

    async def advance_audit_head(
        self, tenant: str, head: AuditHead, previous_seq: int, *, segment: str = ""
    ) -> bool:
        if previous_seq == 0:
            item = items.head_item(tenant, head, segment)
            return await self._conditional("put_item", Item=item, **items.first_head_condition()) is not None
        request = items.advance_head_request(tenant, head, previous_seq, segment)
        return await self._conditional("update_item", **request) is not None

    async def append_audit_link(self, link: AuditEntry, previous_seq: int) -> tuple[bool, bool]:
        if not await self.put_audit_entry(link):  # two conditional writes (a transaction costs double)
            return False, False
        head = AuditHead(link.seq, link.hash)
        return True, await self.advance_audit_head(link.tenant, head, previous_seq, segment=link.segment)

    async def get_audit_entry(self, tenant: str, seq: int, *, segment: str = "") -> AuditEntry | None:
        item = await self._get(items.entry_key(tenant, seq, segment))
        return None if item is None else items.entry_from_item(item)

    async def list_audit(
        self, tenant: str, after_seq: int = 0, limit: int = 1000, *, segment: str = ""
    ) -> list[AuditEntry]:
        if limit <= 0:
            return []
        found = await self._query(items.list_audit_request(tenant, after_seq, segment), limit=limit)
        return [items.entry_from_item(item) for item in found]

    async def scan_audit(
        self, tenant: str, after: tuple[str, int] | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        if limit <= 0:
            return []
        found = await self._query(segments.scan_request(tenant, after), limit=limit)
        return [items.entry_from_item(item) for item in found]

    async def recent_audit(
        self, tenant: str, before: tuple[str, str, int] | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        if limit <= 0:
            return []
        found = await self._query(segments.recent_request(tenant, before), limit=limit)
        return [items.entry_from_item(item) for item in found]

    async def audit_tenants(self) -> list[str]:
        found = await self._query(items.directory_request(items.AUDIT_DIR))
        return sorted({get_s(entry, items.GSI1SK) for entry in found})

    async def list_costs(
        self, tenant: str | None, since: str | None = None, until: str | None = None
    ) -> list[AuditEntry]:
        tenants = [tenant] if tenant is not None else await self.audit_tenants()
        found: list[AuditEntry] = []
        for name in tenants:
            found.extend(await self._costs_of(name, since, until))
        return sorted(found, key=lambda e: (e.at, e.tenant, e.segment, e.seq))

    async def _costs_of(self, tenant: str, since: str | None, until: str | None) -> list[AuditEntry]:
        if since is not None and until is not None and since >= until:
            return []
        found = await self._query(items.costs_request(tenant, since, until))
        entries = [items.entry_from_item(item) for item in found]
        return [e for e in entries if (since is None or e.at >= since) and (until is None or e.at < until)]
