"""The DynamoDB ``ContainerStore``: one item per container, found by the container alone.

    item        PK                               SK          (TTL: expires_at_epoch)
    container   CONTAINER#<provider>#<id>        CONTAINER   tenant, expires_at

A request names a container without naming its tenant, so the key is the container's; the item says whose
it is. A claim is one conditional PutItem: the item is absent, expired (TTL deletes late, so an expired item
may still be there), or the tenant's own with an earlier expiry; when the condition fails, one read tells
whether the record is the tenant's own (lasting longer) or another's. TTL alone deletes expired records.
"""

from __future__ import annotations

from ..timeutil import epoch_seconds, now_str
from .dynamodb_items import PK, SK, TTL_ATTRIBUTE, Item, expression, get_s, s
from .dynamodb_primitives import DynamoDBPrimitives


def container_key(provider: str, container_id: str) -> Item:
    return {PK: s(f"CONTAINER#{provider}#{container_id}"), SK: s("CONTAINER")}


class DynamoDBContainers(DynamoDBPrimitives):
    """Mixed into ``DynamoDBStore``: the container methods, on the store's own primitives."""

    async def claim_container(self, tenant: str, provider: str, container_id: str, expires_at: str) -> bool:
        key = container_key(provider, container_id)
        item = {
            **key,
            "tenant": s(tenant),
            "expires_at": s(expires_at),
            TTL_ATTRIBUTE: {"N": str(epoch_seconds(expires_at))},
        }
        # new, expired, or the tenant's own with an earlier expiry (a claim never shortens a record)
        condition = "attribute_not_exists(#pk) OR #exp <= :now OR (#tenant = :tenant AND #exp <= :exp)"
        values = {":tenant": s(tenant), ":now": s(now_str()), ":exp": s(expires_at)}
        request = expression(values=values, names={"#tenant": "tenant"}, ConditionExpression=condition)
        if await self._conditional("put_item", Item=item, **request) is not None:
            return True
        return await self.container_owner(provider, container_id) == tenant  # its own, lasting longer

    async def container_owner(self, provider: str, container_id: str) -> str | None:
        item = await self._get(container_key(provider, container_id))
        if item is None or get_s(item, "expires_at") <= now_str():
            return None
        return get_s(item, "tenant")

    async def sweep_containers(self, now: str) -> int:
        """Nothing: DynamoDB's TTL deletes expired records (a read treats one as gone from its expiry on),
        so a sweep does not scan the table for them."""
        return 0
