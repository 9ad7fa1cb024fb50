"""The DynamoDB ``LimitStore``: limits in the tenant's partition, counters one item per bucket.

    item          PK                 SK                  GSI1PK / GSI1SK           (TTL: expires_at_epoch)
    limit         LIMIT#<tenant>     TENANT | KEY#<id>   LIMITS / <tenant>#<SK>
    counter       RL#<bucket>        RL                  -                         TTL: after its minute

A counter update is one UpdateItem: ``ADD count :n`` conditioned on the result staying within the limit
(``attribute_not_exists(count) OR count <= :max``), so concurrent instances never admit past it. The
hot path reads a tenant's limits with one Query (``tenant_limits``), which ``tollgate.limits`` caches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .dynamodb_items import GSI1PK, GSI1SK, PK, SK, TTL_ATTRIBUTE, Item, Request, get_s, n, opt_n, s
from .dynamodb_primitives import ConditionFailed, DynamoDBPrimitives
from .limits_base import Counted, RateLimit

if TYPE_CHECKING:
    pass

LIMITS_DIR = "LIMITS"
_TENANT_SK = "TENANT"
_NAMES = {"#c": "count", "#ttl": TTL_ATTRIBUTE}


def limit_key(tenant: str, key_id: str | None) -> Item:
    return {PK: s(f"LIMIT#{tenant}"), SK: s(_TENANT_SK if key_id is None else f"KEY#{key_id}")}


def limit_item(limit: RateLimit) -> Item:
    key = limit_key(limit.tenant, limit.key_id)
    item: Item = {
        **key,
        GSI1PK: s(LIMITS_DIR),
        GSI1SK: s(f"{limit.tenant}#{key[SK]['S']}"),
        "tenant": s(limit.tenant),
    }
    if limit.key_id is not None:
        item["key_id"] = s(limit.key_id)
    if limit.rpm is not None:
        item["rpm"] = n(limit.rpm)
    if limit.tpm is not None:
        item["tpm"] = n(limit.tpm)
    return item


def limit_from_item(item: Item) -> RateLimit:
    key_id = item.get("key_id")
    return RateLimit(
        get_s(item, "tenant"), key_id["S"] if key_id else None, opt_n(item, "rpm"), opt_n(item, "tpm")
    )


def _sorted(limits: list[RateLimit]) -> list[RateLimit]:
    return sorted(limits, key=lambda lim: (lim.tenant, lim.key_id or ""))


def counter_key(bucket: str) -> Item:
    return {PK: s(f"RL#{bucket}"), SK: s("RL")}


def count_request(bucket: str, amount: int, limit: int, expires_epoch: int) -> Request:
    return {
        "Key": counter_key(bucket),
        "UpdateExpression": "ADD #c :n SET #ttl = :exp",
        # more than the whole limit never fits, not even in a fresh bucket
        "ConditionExpression": ("attribute_not_exists(#c) OR " if amount <= limit else "") + "#c <= :max",
        "ExpressionAttributeNames": _NAMES,
        "ExpressionAttributeValues": {":n": n(amount), ":exp": n(expires_epoch), ":max": n(limit - amount)},
        "ReturnValues": "UPDATED_NEW",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def add_request(bucket: str, amount: int, expires_epoch: int) -> Request:
    return {
        "Key": counter_key(bucket),
        "UpdateExpression": "ADD #c :n SET #ttl = :exp",
        "ExpressionAttributeNames": _NAMES,
        "ExpressionAttributeValues": {":n": n(amount), ":exp": n(expires_epoch)},
        "ReturnValues": "UPDATED_NEW",
    }


class DynamoDBLimits(DynamoDBPrimitives):
    """Mixed into ``DynamoDBStore``: the ``LimitStore`` methods on the store's own primitives."""

    async def set_limit(self, limit: RateLimit) -> None:
        await self.call("put_item", Item=limit_item(limit))

    async def clear_limit(self, tenant: str, key_id: str | None) -> bool:
        response = await self.call("delete_item", Key=limit_key(tenant, key_id), ReturnValues="ALL_OLD")
        return "Attributes" in response

    async def tenant_limits(self, tenant: str) -> list[RateLimit]:
        request = {
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": PK},
            "ExpressionAttributeValues": {":pk": s(f"LIMIT#{tenant}")},
        }
        return _sorted([limit_from_item(item) for item in await self._query(request)])

    async def list_limits(self, tenant: str | None = None) -> list[RateLimit]:
        found = [limit_from_item(item) for item in await self._listed(LIMITS_DIR)]
        return _sorted([lim for lim in found if tenant is None or lim.tenant == tenant])

    async def count_in_bucket(self, bucket: str, amount: int, limit: int, expires_epoch: int) -> Counted:
        try:
            response = await self.call("update_item", **count_request(bucket, amount, limit, expires_epoch))
        except ConditionFailed as failed:
            item = failed.item if failed.item is not None else await self._get(counter_key(bucket))
            return Counted(False, opt_n(item, "count") or 0 if item is not None else 0)
        return Counted(True, int(response["Attributes"]["count"]["N"]))

    async def read_bucket(self, bucket: str) -> int:
        item = await self._get(counter_key(bucket))
        return (opt_n(item, "count") or 0) if item is not None else 0

    async def add_to_bucket(self, bucket: str, amount: int, expires_epoch: int) -> int:
        response = await self.call("update_item", **add_request(bucket, amount, expires_epoch))
        return int(response["Attributes"]["count"]["N"])
