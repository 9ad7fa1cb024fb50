"""The DynamoDB ``ContainerStore``: one item per container, found by the container alone.

    item        PK                               SK          (TTL: expires_at_epoch)
    container   CONTAINER#<provider>#<id>        CONTAINER   tenant, expires_at

A request names a container without naming its tenant, so the key is the container's; the item says whose
it is. A claim is one conditional PutItem: the item is absent, the tenant's own, or expired (TTL deletes
late, so an expired item may still be there).
"""

from __future__ import annotations

from ..timeutil import epoch_seconds, now_str
from .dynamodb_items import PK, SK, TTL_ATTRIBUTE, Item, Request, expression, get_s, s
from .dynamodb_primitives import DynamoDBPrimitives


def container_key(provider: str, container_id: str) -> Item:
    return {PK: s(f"CONTAINER#{provider}#{container_id}"), SK: s("CONTAINER")}


def expired_containers_scan(now: str) -> Request:
    values = {":p": s("CONTAINER#"), ":now": s(now)}
    filtered = "begins_with(#pk, :p) AND #exp <= :now"
    return expression(values=values, FilterExpression=filtered, ProjectionExpression="#pk, #sk")


class DynamoDBContainers(DynamoDBPrimitives):
    """Mixed into ``DynamoDBStore``: the container methods, on the store's own primitives."""

    async def claim_container(self, tenant: str, provider: str, container_id: str, expires_at: str) -> bool:
        key = container_key(provider, container_id)
        current = await self._get(key)
        if current is not None and get_s(current, "tenant") == tenant:
            expires_at = max(expires_at, get_s(current, "expires_at"))  # a claim never shortens one
        item = {
            **key,
            "tenant": s(tenant),
            "expires_at": s(expires_at),
            TTL_ATTRIBUTE: {"N": str(epoch_seconds(expires_at))},
        }
        condition = "attribute_not_exists(#pk) OR #tenant = :tenant OR #exp <= :now"
        values = {":tenant": s(tenant), ":now": s(now_str())}
        request = expression(values=values, names={"#tenant": "tenant"}, ConditionExpression=condition)
        return await self._conditional("put_item", Item=item, **request) is not None

    async def container_owner(self, provider: str, container_id: str) -> str | None:
        item = await self._get(container_key(provider, container_id))
        if item is None or get_s(item, "expires_at") <= now_str():
            return None
        return get_s(item, "tenant")

    async def sweep_containers(self, now: str) -> int:
        """A Scan for expired records: DynamoDB's TTL does this job in production."""
        swept = 0
        for found in await self._query(expired_containers_scan(now), operation="scan"):
            delete = expression(values={":now": s(now)}, ConditionExpression="#exp <= :now")
            if await self._conditional("delete_item", Key=found, **delete) is not None:
                swept += 1
        return swept
