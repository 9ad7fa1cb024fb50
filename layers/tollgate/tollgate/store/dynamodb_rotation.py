"""The DynamoDB side of key rotation (``KeyStore.rotate_key``).

The new secret is a new key item (``KEY#<new hash>``), a copy of the current one with every attribute
(tenant, pools, allow-list, and whatever later versions add), which takes the key's place in the GSI1 key
directory. The old item leaves the directory, keeps working until the grace ends (its ``expires_at``),
and is deleted by TTL a day after. The new item lists the hashes still in their grace (``retired``), so
that revoking the key revokes them too, and so that the next rotation ends each of them no later than the
secret it retires (a grace of 0 after a leak stops every earlier secret).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import BadRequest
from ..timeutil import epoch_seconds
from . import dynamodb_items as items
from .base import ApiKey
from .dynamodb_items import GSI1PK, GSI1SK, PK, SK, TTL_ATTRIBUTE, Item, Request, get_s, n, opt_s, s
from .dynamodb_primitives import DynamoDBPrimitives

if TYPE_CHECKING:
    pass

RETIRED = "retired"  # on the current key item: old hash -> until when it is accepted
TTL_AFTER_GRACE_SECONDS = 86400
_NAMES = {"#exp": "expires_at", "#ttl": TTL_ATTRIBUTE, "#g1pk": GSI1PK, "#g1sk": GSI1SK}


def _retired(item: Item, at: str) -> dict[str, Any]:
    """The old hashes still in their grace at ``at``."""
    kept = item.get(RETIRED, {}).get("M", {})
    return {h: v for h, v in kept.items() if str(v["S"]) > at}


def new_key_item(current: Item, new_hash: str, at: str, old_until: str) -> Item:
    earlier = {h: s(min(str(v["S"]), old_until)) for h, v in _retired(current, at).items()}
    retired = earlier | {get_s(current, "key_hash"): s(old_until)}
    return {
        **current,
        **items.key_key(new_hash),
        "key_hash": s(new_hash),
        "rotated_at": s(at),
        RETIRED: {"M": retired},
    }


def retire_request(current: Item, old_until: str) -> Request:
    """The old item leaves the directory and expires at the end of the grace (or its own expiry)."""
    expires = opt_s(current, "expires_at")
    until = old_until if expires is None else min(expires, old_until)
    return {
        "Key": {PK: current[PK], SK: current[SK]},
        "UpdateExpression": "SET #exp = :until, #ttl = :ttl REMOVE #g1pk, #g1sk",
        "ConditionExpression": "attribute_exists(#g1pk)",  # still the key's current item
        "ExpressionAttributeNames": {
            "#exp": "expires_at",
            "#ttl": TTL_ATTRIBUTE,
            "#g1pk": GSI1PK,
            "#g1sk": GSI1SK,
        },
        "ExpressionAttributeValues": {
            ":until": s(until),
            ":ttl": n(epoch_seconds(until) + TTL_AFTER_GRACE_SECONDS),
        },
    }


def shorten_request(old_hash: str, until: str) -> Request:
    """An earlier old secret's grace ends no later than ``until`` (never lengthened: the condition)."""
    return {
        "Key": items.key_key(old_hash),
        "UpdateExpression": "SET #exp = :until, #ttl = :ttl",
        "ConditionExpression": "attribute_exists(#exp) AND #exp > :until",
        "ExpressionAttributeNames": {"#exp": "expires_at", "#ttl": TTL_ATTRIBUTE},
        "ExpressionAttributeValues": {
            ":until": s(until),
            ":ttl": n(epoch_seconds(until) + TTL_AFTER_GRACE_SECONDS),
        },
    }


class DynamoDBRotation(DynamoDBPrimitives):
    """Mixed into ``DynamoDBStore``."""

    async def _current_key_item(self, key_id: str) -> Item | None:
        for entry in await self._query(items.directory_request(items.KEYS_DIR, key_id)):
            item = await self._get({PK: entry[PK], SK: entry[SK]})
            if item is not None and GSI1PK in item:
                return item
        return None

    async def rotate_key(self, key_id: str, new_hash: str, at: str, old_until: str) -> ApiKey | None:
        current = await self._current_key_item(key_id)
        if current is None:
            return None
        fresh = new_key_item(current, new_hash, at, old_until)
        await self.call("put_item", Item=fresh, **items.if_absent())
        if await self._conditional("update_item", **retire_request(current, old_until)) is None:
            await self.call("delete_item", Key={PK: fresh[PK], SK: fresh[SK]})
            raise BadRequest(
                f"key {key_id} is being rotated by another call; try again", code="rotation_conflict"
            )
        for old_hash in _retired(current, at):  # a rotation after a leak ends the earlier secrets too
            await self._conditional("update_item", **shorten_request(old_hash, old_until))
        return items.key_from_item(fresh)

    async def revoke_retired(self, current: Item, at: str) -> None:
        """Revoke the old hashes of a revoked key that are still in their grace."""
        for old_hash in _retired(current, at):
            await self._conditional("update_item", **items.revoke_request(items.key_key(old_hash), at))
