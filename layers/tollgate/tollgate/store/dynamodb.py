"""The DynamoDB backend: one table, every invariant one conditional write, no transactions.

Item layout (single table, key schema and indexes in ``template.yaml`` / ``table.json``)::

    item          PK                 SK                  GSI1PK / GSI1SK       GSI2PK / GSI2SK
    key           KEY#<key_hash>     KEY                 KEYS / <key_id>       -
    pool          POOL#<tenant>      POOL#<pool>         POOLS / <tenant>#<pool>
    lease shard   POOL#<tenant>      LEASE#<len>:<pool>#<writer>  -       (dynamodb_lease_items)
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

Pools (items, reserve, settle, escrow leases, sweep): ``dynamodb_pools`` and ``dynamodb_leases``. Open
reservations share their item's 400 KB (about 100 bytes each): a direct one the pool item's, a leased one
its writer's shard's.

boto3 is imported, and the client built, on first use; every call runs on this store's own bounded thread
pool, never the loop's default executor. The endpoint comes only from boto3's own configuration
(``AWS_ENDPOINT_URL_DYNAMODB``), so tests point it at moto or dynalite without any switch of ours.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..aws import LazyClient
from ..timeutil import epoch_seconds, now_str
from . import dynamodb_audit_items as audit_items
from . import dynamodb_items as items
from . import dynamodb_segments as segments
from .audit_base import AuditEntry, AuditHead
from .base import (
    ApiKey,
    KeyExists,
)
from .dynamodb_alerts import DynamoDBAlerts
from .dynamodb_budgets import DynamoDBBudgets
from .dynamodb_containers import DynamoDBContainers
from .dynamodb_items import Item, Request, get_s
from .dynamodb_limits import DynamoDBLimits
from .dynamodb_pools import DynamoDBPools
from .dynamodb_primitives import ConditionFailed as _ConditionFailed
from .dynamodb_primitives import StoreConflict
from .dynamodb_responses import DynamoDBResponses
from .dynamodb_rollups import DynamoDBRollups
from .dynamodb_rotation import DynamoDBRotation
from .table import create_table_request, ttl_attribute

__all__ = ["DynamoDBStore", "StoreConflict"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_FILTERED_CHUNK = 1000  # directory entries read at once while looking for one tenant's keys
_ATTEMPTS = 20
_TTL_UNSUPPORTED = {"UnknownOperationException", "NotImplemented"}  # dynalite: the former


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError`` (None for anything else)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return str(code) if code else None


class DynamoDBStore(
    DynamoDBPools,
    DynamoDBRollups,
    DynamoDBResponses,
    DynamoDBContainers,
    DynamoDBAlerts,
    DynamoDBBudgets,
    DynamoDBLimits,
    DynamoDBRotation,
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
        self._pool_batches, self._leases = self._pool_parts()

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
        return [item async for page in self._query_pages(request, limit, operation) for item in page]

    async def _query_pages(
        self, request: Request, limit: int | None = None, operation: str = "query"
    ) -> AsyncIterator[list[Item]]:
        """Each page's items of a Query (or Scan) as it arrives, up to ``limit`` items in all."""
        seen = 0
        while limit is None or seen < limit:
            page = dict(request) if limit is None else {**request, "Limit": limit - seen}
            response = await self.call(operation, **page)
            items = response.get("Items", [])
            seen += len(items)
            yield items
            if "LastEvaluatedKey" not in response:
                break
            request = {**request, "ExclusiveStartKey": response["LastEvaluatedKey"]}

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

    async def get_key(self, key_id: str) -> ApiKey | None:
        item = await self._current_key_item(key_id)
        return None if item is None else items.key_from_item(item)

    async def page_keys(self, tenant: str | None, after: str | None, limit: int) -> list[ApiKey]:
        """Directory pages in key_id order until ``limit`` keys of the tenant are found (a tenant filter
        reads the directory past the other tenants' keys: the directory is not by tenant)."""
        found: dict[str, ApiKey] = {}
        while len(found) < limit:
            chunk = limit - len(found) if tenant is None else _FILTERED_CHUNK  # a filter skips most entries
            response = await self.call("query", **items.directory_page_request(items.KEYS_DIR, after, chunk))
            entries = response.get("Items", [])
            listed = await self._batch_get([{items.PK: e[items.PK], items.SK: e[items.SK]} for e in entries])
            keys = [items.key_from_item(i) for i in listed if items.GSI1PK in i]  # current secrets only
            found.update((k.key_id, k) for k in keys if tenant is None or k.tenant == tenant)
            if "LastEvaluatedKey" not in response:
                break
            after = get_s(response["LastEvaluatedKey"], items.GSI1SK)
        return sorted(found.values(), key=lambda k: k.key_id)[:limit]

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
        item = await self._get(audit_items.head_key(tenant, segment))
        return None if item is None else audit_items.head_from_item(item)

    async def audit_heads(self, tenant: str) -> dict[str, AuditHead]:
        found = await self._query(segments.heads_request(tenant))
        return {get_s(i, "segment") if "segment" in i else "": audit_items.head_from_item(i) for i in found}

    async def put_audit_entry(self, entry: AuditEntry) -> bool:
        item = audit_items.entry_item(entry)
        return await self._conditional("put_item", Item=item, **items.if_absent()) is not None

    async def advance_audit_head(
        self, tenant: str, head: AuditHead, previous_seq: int, *, segment: str = ""
    ) -> bool:
        if previous_seq == 0:
            item, first = audit_items.head_item(tenant, head, segment), audit_items.first_head_condition()
            return await self._conditional("put_item", Item=item, **first) is not None
        request = audit_items.advance_head_request(tenant, head, previous_seq, segment)
        return await self._conditional("update_item", **request) is not None

    async def append_audit_link(self, link: AuditEntry, previous_seq: int) -> tuple[bool, bool]:
        if not await self.put_audit_entry(link):  # two conditional writes (a transaction costs double)
            return False, False
        head = AuditHead(link.seq, link.hash)
        return True, await self.advance_audit_head(link.tenant, head, previous_seq, segment=link.segment)

    async def get_audit_entry(self, tenant: str, seq: int, *, segment: str = "") -> AuditEntry | None:
        item = await self._get(audit_items.entry_key(tenant, seq, segment))
        return None if item is None else audit_items.entry_from_item(item)

    async def list_audit(
        self, tenant: str, after_seq: int = 0, limit: int = 1000, *, segment: str = ""
    ) -> list[AuditEntry]:
        if limit <= 0:
            return []
        found = await self._query(audit_items.list_audit_request(tenant, after_seq, segment), limit=limit)
        return [audit_items.entry_from_item(item) for item in found]

    async def scan_audit(
        self, tenant: str, after: tuple[str, int] | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        if limit <= 0:
            return []
        found = await self._query(segments.scan_request(tenant, after), limit=limit)
        return [audit_items.entry_from_item(item) for item in found]

    async def recent_audit(
        self, tenant: str, before: tuple[str, str, int] | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        if limit <= 0:
            return []
        found = await self._query(segments.recent_request(tenant, before), limit=limit)
        return [audit_items.entry_from_item(item) for item in found]

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
        found = await self._query(audit_items.costs_request(tenant, since, until))
        entries = [audit_items.entry_from_item(item) for item in found]
        return [e for e in entries if (since is None or e.at >= since) and (until is None or e.at < until)]
