"""Escrow leases of a token pool: the items and their requests (pure builders, no I/O).

    item          PK             SK                                  attributes
    pool          POOL#<tenant>  POOL#<pool>                         ... ``lease#<writer>``: tokens granted
    lease shard   POOL#<tenant>  LEASE#<len(pool)>:<pool>#<writer>   a pool item's totals and maps, plus
                                                                     ``writer``, ``touched``, ``closed``

A writer (one store instance: a Lambda execution environment, a ``tollgate serve`` process) takes a lease
of L tokens from the pool item with one conditional write (``grant_request``: ``remaining`` goes down by L,
``lease#<writer>`` up by L), then adds L to its own shard (``extend_request``). Its reservations and
settles are then conditional writes on its shard alone, shaped like the pool item's (``capacity`` is the
shard's ceiling, ``remaining`` what is left of it). The pool's ``lease#<writer>`` attribute is the truth of
what the writer holds: folding a shard (``fold_request``) gives back ``granted - used`` and charges ``used``
to the pool item, whatever the shard's own ceiling says, so a cut or an extension lost between two writes
leaves the pool short (never over), until the fold. The length prefix in the shard's sort key keeps pool
names that contain ``#`` apart; ``LEASE#`` sorts before ``POOL#``, so a tenant's Query returns the shards
before the pools (the views read shards first: see ``dynamodb_leases.merged``).
"""

from __future__ import annotations

import secrets

from .dynamodb_items import PK, SK, Item, Request, expression, get_n, n, s

GRANT_PREFIX = "lease#"
SHARD_PREFIX = "LEASE#"
NAMES = {
    "#closed": "closed",
    "#touch": "touched",
    "#swept": "swept",
    "#tn": "tenant",
    "#pl": "pool",
    "#wr": "writer",
}
_EMPTY: Item = {"M": {}}


def new_writer(now: float) -> str:
    """A writer id, unique per shard: the second it was made (hex, for the sweep) and 64 random bits."""
    return f"{int(now):x}-{secrets.token_hex(8)}"


def writer_born(writer: str) -> int:
    """The epoch second a writer id was made (0 when unreadable: such a grant is old)."""
    try:
        return int(writer.split("-", 1)[0], 16)
    except ValueError:
        return 0


def shard_prefix(tenant: str, pool: str) -> Item:
    return {PK: s(f"POOL#{tenant}"), SK: s(f"{SHARD_PREFIX}{len(pool)}:{pool}#")}


def shard_key(tenant: str, pool: str, writer: str) -> Item:
    prefix = shard_prefix(tenant, pool)
    return {PK: prefix[PK], SK: s(prefix[SK]["S"] + writer)}


def is_shard(item: Item) -> bool:
    return str(item.get(SK, {}).get("S", "")).startswith(SHARD_PREFIX)


def shards_request(tenant: str, pool: str | None = None) -> Request:
    """The lease shards of one pool (or of every pool of the tenant), read consistently."""
    prefix = (
        shard_prefix(tenant, pool) if pool is not None else {PK: s(f"POOL#{tenant}"), SK: s(SHARD_PREFIX)}
    )
    request = expression(
        values={":pk": prefix[PK], ":pre": prefix[SK]},
        KeyConditionExpression="#pk = :pk AND begins_with(#sk, :pre)",
    )
    return {**request, "ConsistentRead": True}


def grants_of(pool_item: Item) -> dict[str, int]:
    """writer -> tokens granted, from a pool item."""
    return {
        name[len(GRANT_PREFIX) :]: get_n(pool_item, name)
        for name in pool_item
        if name.startswith(GRANT_PREFIX)
    }


def _on_grant(pool_key: Item, writer: str, values: Item, update: str, condition: str) -> Request:
    """An update of the pool item that moves tokens between ``remaining`` and ``writer``'s grant (``#g``)."""
    return expression(
        key=pool_key,
        values=values,
        names={"#g": GRANT_PREFIX + writer},
        UpdateExpression=update,
        ConditionExpression=condition,
    )


def grant_request(
    pool_key: Item, writer: str, tokens: int, share: int = 1, *, existing: bool | None = None
) -> Request:
    """Take ``tokens`` from the pool for ``writer`` if they are at most 1/``share`` of what it has left
    (an unlimited pool always grants). ``existing``: only if the writer's grant is (True: its shard was
    not folded meanwhile, which removes the grant) or is not (False: a new writer) there."""
    condition = "attribute_exists(#pk) AND (attribute_not_exists(#cap) OR #rem >= :least)"
    if existing is not None:
        condition += " AND attribute_exists(#g)" if existing else " AND attribute_not_exists(#g)"
    values = {":l": n(tokens), ":least": n(tokens * share), ":zero": n(0)}
    update = "SET #rem = #rem - :l, #g = if_not_exists(#g, :zero) + :l"
    request = _on_grant(pool_key, writer, values, update, condition)
    return {**request, "ReturnValues": "ALL_NEW", "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}


def cover_request(pool_key: Item, writer: str, tokens: int) -> Request:
    """Grant ``tokens`` that a settle already spent past the writer's lease (usage above a reservation):
    unconditional on the capacity, as an overdraft on the pool item itself is; only while the grant is
    there (a folded shard's overdraft was charged by its fold)."""
    update = "SET #rem = #rem - :l, #g = #g + :l"
    return _on_grant(pool_key, writer, {":l": n(tokens)}, update, "attribute_exists(#g)")


def give_back_request(pool_key: Item, writer: str, tokens: int) -> Request:
    """Return ``tokens`` of ``writer``'s grant to the pool (if it still holds that many)."""
    return _on_grant(pool_key, writer, {":l": n(tokens)}, "SET #rem = #rem + :l, #g = #g - :l", "#g >= :l")


def extend_request(key: Item, tenant: str, pool: str, writer: str, tokens: int, *, first: bool) -> Request:
    """Raise the shard's ceiling by ``tokens``; ``first`` creates it (and fails if it ever existed: a
    writer id is never reused), otherwise it must exist and be open."""
    values = {
        ":l": n(tokens),
        ":zero": n(0),
        ":empty": _EMPTY,
        ":tn": s(tenant),
        ":pl": s(pool),
        ":wr": s(writer),
    }
    update = (
        "SET #cap = if_not_exists(#cap, :zero) + :l, #rem = if_not_exists(#rem, :zero) + :l,"
        " #used = if_not_exists(#used, :zero), #rsv = if_not_exists(#rsv, :zero),"
        " #map = if_not_exists(#map, :empty), #swept = if_not_exists(#swept, :empty),"
        " #tn = :tn, #pl = :pl, #wr = :wr"
    )
    condition = (
        "attribute_not_exists(#pk)" if first else "attribute_exists(#pk) AND attribute_not_exists(#closed)"
    )
    request = expression(
        key=key, values=values, names=NAMES, UpdateExpression=update, ConditionExpression=condition
    )
    return {**request, "ReturnValues": "UPDATED_NEW"}


def shard_reserve_request(key: Item, rid: str, tokens: int, at: str, reservation: Item) -> Request:
    """Hold ``tokens`` on an open shard if its lease covers them (nothing returned on success; the old
    shard when the condition fails, to tell why)."""
    request = expression(
        key=key,
        values={":e": n(tokens), ":r": reservation, ":at": s(at)},
        names={**NAMES, "#rid": rid},
        UpdateExpression="SET #rem = #rem - :e, #rsv = #rsv + :e, #map.#rid = :r, #touch = :at",
        ConditionExpression=(
            "attribute_exists(#pk) AND attribute_not_exists(#closed) AND #rem >= :e"
            " AND attribute_not_exists(#map.#rid)"
        ),
    )
    return {**request, "ReturnValues": "NONE", "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}


def cut_request(key: Item, tokens: int) -> Request:
    """Lower an open shard's ceiling by ``tokens`` of its unused lease (a reclaim's first write)."""
    request = expression(
        key=key,
        values={":x": n(tokens)},
        names=NAMES,
        UpdateExpression="SET #cap = #cap - :x, #rem = #rem - :x",
        ConditionExpression="attribute_exists(#pk) AND attribute_not_exists(#closed) AND #rem >= :x",
    )
    return {**request, "ReturnValues": "UPDATED_NEW"}


def close_request(key: Item, touched: str, used: int, at: str) -> Request:
    """Close an idle shard for its fold: only if nothing moved since it was read (its last reserve, its
    usage) and nothing is held or marked in it, so its ``used`` is final."""
    values = {":touched": s(touched), ":u": n(used), ":zero": n(0), ":at": s(at)}
    touched_unchanged = "#touch = :touched" if touched else "attribute_not_exists(#touch)"
    request = expression(
        key=key,
        values=values,
        names=NAMES,
        UpdateExpression="SET #closed = :at",
        ConditionExpression=(
            f"attribute_not_exists(#closed) AND {touched_unchanged} AND #used = :u AND #rsv = :zero"
            " AND size(#map) = :zero AND size(#swept) = :zero"
        ),
    )
    return {**request, "ReturnValues": "ALL_NEW"}


def fold_request(pool_key: Item, writer: str, granted: int, used: int) -> Request:
    """Charge a closed shard's ``used`` to the pool item and give back the rest of its grant, once."""
    values = {":g": n(granted), ":u": n(used), ":back": n(granted - used)}
    update = "SET #used = #used + :u, #rem = #rem + :back REMOVE #g"
    return _on_grant(pool_key, writer, values, update, "#g = :g")


def drop_grant_request(pool_key: Item, writer: str, granted: int) -> Request:
    """Give back the whole grant of a writer whose shard never came to be (or is gone), once."""
    return _on_grant(pool_key, writer, {":g": n(granted)}, "SET #rem = #rem + :g REMOVE #g", "#g = :g")


def delete_closed_request(key: Item) -> Request:
    return expression(key=key, names=NAMES, ConditionExpression="attribute_exists(#closed)")
