"""The DynamoDB ``ResponseStore``: one item per stored response, in the tenant's own partition.

    item          PK                  SK                  (TTL: expires_at_epoch)
    response      RESPONSE#<tenant>   RESPONSE#<id>

The tenant is part of the partition key, so a lookup with another tenant's name cannot reach the item. The
body is one JSON document (numbers stay exactly what was stored), zlib-compressed into a binary attribute:
a conversation compresses several times over, and DynamoDB's item limit (400 KB) applies to what is
stored. A response still too large is refused by DynamoDB, and the caller logs it.
"""

from __future__ import annotations

import json
import zlib
from typing import TYPE_CHECKING, Any

from ..timeutil import epoch_seconds, now_str
from .base import StoredResponse
from .dynamodb_items import PK, SK, TTL_ATTRIBUTE, Item, Request, expression, get_s, s
from .dynamodb_primitives import DynamoDBPrimitives

if TYPE_CHECKING:
    pass


def response_key(tenant: str, response_id: str) -> Item:
    return {PK: s(f"RESPONSE#{tenant}"), SK: s(f"RESPONSE#{response_id}")}


def response_item(record: StoredResponse) -> Item:
    return {
        **response_key(record.tenant, record.response_id),
        "body": {"B": zlib.compress(json.dumps(record.body, separators=(",", ":")).encode())},
        "created_at": s(record.created_at),
        "expires_at": s(record.expires_at),
        TTL_ATTRIBUTE: {"N": str(epoch_seconds(record.expires_at))},
    }


def response_from_item(tenant: str, response_id: str, item: Item) -> StoredResponse:
    body: dict[str, Any] = json.loads(zlib.decompress(item["body"]["B"]))
    return StoredResponse(tenant, response_id, body, get_s(item, "created_at"), get_s(item, "expires_at"))


def live_condition(now: str) -> Request:
    """The item exists and has not expired (TTL deletes late: an expired item may still be there)."""
    return expression(values={":now": s(now)}, ConditionExpression="attribute_exists(#pk) AND #exp > :now")


def expired_responses_scan(now: str) -> Request:
    values = {":p": s("RESPONSE#"), ":now": s(now)}
    filtered = "begins_with(#pk, :p) AND #exp <= :now"
    return expression(values=values, FilterExpression=filtered, ProjectionExpression="#pk, #sk")


class DynamoDBResponses(DynamoDBPrimitives):
    """Mixed into ``DynamoDBStore``: the response methods, on the store's own primitives."""

    async def put_response(self, record: StoredResponse) -> None:
        await self.call("put_item", Item=response_item(record))

    async def get_response(self, tenant: str, response_id: str) -> StoredResponse | None:
        item = await self._get(response_key(tenant, response_id))
        if item is None or get_s(item, "expires_at") <= now_str():
            return None
        return response_from_item(tenant, response_id, item)

    async def delete_response(self, tenant: str, response_id: str) -> bool:
        key = response_key(tenant, response_id)
        return await self._conditional("delete_item", Key=key, **live_condition(now_str())) is not None

    async def sweep_responses(self, now: str) -> int:
        """A Scan for expired responses: DynamoDB's TTL does this job in production."""
        swept = 0
        for found in await self._query(expired_responses_scan(now), operation="scan"):
            delete = expression(values={":now": s(now)}, ConditionExpression="#exp <= :now")
            if await self._conditional("delete_item", Key=found, **delete) is not None:
                swept += 1
        return swept
