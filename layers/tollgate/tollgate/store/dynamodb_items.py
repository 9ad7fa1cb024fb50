"""Pure item <-> record mapping and the request builders of the DynamoDB backend (no I/O, no boto3).

Items are in the low-level client's wire form (``{"S": "..."}``, ``{"N": "12"}``): numbers arrive as
strings and leave through ``int()``, so no ``Decimal`` and no float ever reaches a record (the audit hash
must be identical on every store). Optional fields (``cost_micro_usd``, ``name``, ...) are omitted when
None. Every attribute in an expression goes through ``#name`` (several are DynamoDB reserved words), and
each request carries exactly the names and values its expressions use, as DynamoDB requires.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from .base import ApiKey, Holder, Pool

Attr = dict[str, Any]  # one AttributeValue
Item = dict[str, Attr]
Request = dict[str, Any]

PK, SK = "PK", "SK"
GSI1, GSI1PK, GSI1SK = "GSI1", "GSI1PK", "GSI1SK"
GSI2, GSI2PK, GSI2SK = "GSI2", "GSI2PK", "GSI2SK"
TTL_ATTRIBUTE = "expires_at_epoch"
SEQ_WIDTH = 12
KEYS_DIR, POOLS_DIR, AUDIT_DIR = "KEYS", "POOLS", "AUDIT"
HEAD_SK = "HEAD"
SEQ_PREFIX = "SEQ#"
SEGMENT_PREFIX = "SEG#"  # sorts before SEQ#: one Query streams the segments, then the legacy chain
MAX_SEQ_SK = SEQ_PREFIX + "9" * SEQ_WIDTH

# Every attribute name an expression may use, by its placeholder.
NAMES = {
    "#pk": PK,
    "#sk": SK,
    "#g1pk": GSI1PK,
    "#g1sk": GSI1SK,
    "#g2pk": GSI2PK,
    "#g2sk": GSI2SK,
    "#cap": "capacity",
    "#rem": "remaining",
    "#rsv": "reserved",
    "#used": "used",
    "#anon": "anon_reserved",
    "#map": "reservations",
    "#tok": "tokens",
    "#exp": "expires_at",
    "#ver": "version",
    "#seq": "seq",
    "#hash": "hash",
    "#rev": "revoked_at",
}
_PLACEHOLDER = re.compile(r"[#:]\w+")

# ------------------------------------------------------------------------------------------ attributes


def s(value: str) -> Attr:
    return {"S": value}


def n(value: int) -> Attr:
    return {"N": str(int(value))}


def _int(text: str) -> int:
    number = Decimal(text)
    if number != number.to_integral_value():
        raise ValueError(f"expected an integer, found {text}")
    return int(number)


def get_s(item: Item, name: str) -> str:
    value: str = item[name]["S"]
    return value


def opt_s(item: Item, name: str) -> str | None:
    return get_s(item, name) if name in item and "S" in item[name] else None


def get_n(item: Item, name: str) -> int:
    return _int(item[name]["N"])


def opt_n(item: Item, name: str) -> int | None:
    return get_n(item, name) if name in item and "N" in item[name] else None


def put_optional(item: Item, name: str, value: Attr | None) -> Item:
    if value is not None:
        item[name] = value
    return item


def expression(
    *, key: Item | None = None, values: Item | None = None, names: dict[str, str] | None = None, **parts: str
) -> Request:
    """A request from expressions, with exactly the ``#names`` and ``:values`` they mention."""
    text = " ".join(parts.values())
    used = set(_PLACEHOLDER.findall(text))
    request: Request = dict(parts)
    if key is not None:
        request["Key"] = key
    every_name = {**NAMES, **(names or {})}
    chosen_names = {p: v for p, v in every_name.items() if p in used}
    if chosen_names:
        request["ExpressionAttributeNames"] = chosen_names
    chosen = {p: v for p, v in (values or {}).items() if p in used}
    if chosen:
        request["ExpressionAttributeValues"] = chosen
    return request


# ------------------------------------------------------------------------------------------------ keys


def key_key(key_hash: str) -> Item:
    return {PK: s(f"KEY#{key_hash}"), SK: s("KEY")}


def key_item(key: ApiKey) -> Item:
    item: Item = {
        **key_key(key.key_hash),
        GSI1PK: s(KEYS_DIR),
        GSI1SK: s(key.key_id),
        "key_id": s(key.key_id),
        "key_hash": s(key.key_hash),
        "tenant": s(key.tenant),
        "created_at": s(key.created_at),
        "pool": s(key.pool),
    }
    put_optional(item, "name", None if key.name is None else s(key.name))
    models = None if key.models is None else {"L": [s(m) for m in key.models]}
    put_optional(item, "models", models)
    put_optional(item, "expires_at", None if key.expires_at is None else s(key.expires_at))
    put_optional(item, "pools", {"L": [s(p) for p in key.pools]} if key.pools else None)
    return put_optional(item, "revoked_at", None if key.revoked_at is None else s(key.revoked_at))


def key_from_item(item: Item) -> ApiKey:
    models = item.get("models", {}).get("L")
    return ApiKey(
        key_id=get_s(item, "key_id"),
        key_hash=get_s(item, "key_hash"),
        tenant=get_s(item, "tenant"),
        created_at=get_s(item, "created_at"),
        name=opt_s(item, "name"),
        models=None if models is None else tuple(str(m["S"]) for m in models),
        pool=get_s(item, "pool"),
        expires_at=opt_s(item, "expires_at"),
        revoked_at=opt_s(item, "revoked_at"),
        pools=tuple(str(p["S"]) for p in item.get("pools", {}).get("L", [])),
    )


def directory_request(name: str, sort_key: str | None = None) -> Request:
    """GSI1 (keys only): one directory, or its entry with GSI1SK ``sort_key``."""
    condition = "#g1pk = :d" + ("" if sort_key is None else " AND #g1sk = :k")
    values = {":d": s(name), ":k": s(sort_key or "")}
    return {**expression(values=values, KeyConditionExpression=condition), "IndexName": GSI1}


def directory_page_request(name: str, after: str | None, limit: int) -> Request:
    """GSI1 (keys only): up to ``limit`` entries of one directory whose GSI1SK sorts after ``after``."""
    condition = "#g1pk = :d" + ("" if after is None else " AND #g1sk > :k")
    values = {":d": s(name), ":k": s(after or "")}
    request = expression(values=values, KeyConditionExpression=condition)
    return {**request, "IndexName": GSI1, "Limit": limit}


def revoke_request(key: Item, at: str) -> Request:
    """The first revocation time stays."""
    request = expression(
        key=key,
        values={":at": s(at)},
        UpdateExpression="SET #rev = if_not_exists(#rev, :at)",
        ConditionExpression="attribute_exists(#pk)",
    )
    return {**request, "ReturnValues": "ALL_NEW"}


def if_absent() -> Request:
    """The condition of every create: no item with this key yet."""
    return expression(ConditionExpression="attribute_not_exists(#pk)")


# ----------------------------------------------------------------------------------------------- pools


def pool_key(tenant: str, pool: str) -> Item:
    return {PK: s(f"POOL#{tenant}"), SK: s(f"POOL#{pool}")}


def new_pool_item(tenant: str, pool: str, capacity: int | None) -> Item:
    """An empty pool. ``remaining`` is kept as (capacity or 0) - used - reserved, also when unlimited."""
    item: Item = {
        **pool_key(tenant, pool),
        GSI1PK: s(POOLS_DIR),
        GSI1SK: s(f"{tenant}#{pool}"),
        "tenant": s(tenant),
        "pool": s(pool),
        "remaining": n(capacity or 0),
        "used": n(0),
        "reserved": n(0),
        "anon_reserved": n(0),
        "reservations": {"M": {}},
        "swept": {"M": {}},
    }
    return put_optional(item, "capacity", None if capacity is None else n(capacity))


def _holder(held: Item) -> Holder:
    names = (opt_s(held, "key_id") or "", opt_s(held, "provider") or "", opt_s(held, "model") or "")
    return Holder(*names, cost_bound=opt_n(held, "cost_bound") or 0)


def pool_from_item(item: Item) -> Pool:
    held = item.get("reservations", {}).get("M", {})
    swept = item.get("swept", {}).get("M", {})
    return Pool(
        tenant=get_s(item, "tenant"),
        pool=get_s(item, "pool"),
        capacity=opt_n(item, "capacity"),
        used=get_n(item, "used"),
        reserved=get_n(item, "reserved"),
        reservations={rid: (get_n(r["M"], "tokens"), get_s(r["M"], "at")) for rid, r in held.items()},
        holders={rid: _holder(r["M"]) for rid, r in held.items()}
        | {rid: _holder(r["M"]) for rid, r in swept.items() if "key_id" in r["M"]},  # whose a swept one was
        swept={rid: (get_n(r["M"], "tokens"), get_s(r["M"], "at")) for rid, r in swept.items()},
    )


def reservation_value(tokens: int, at: str, holder: Holder) -> Attr:
    """One entry of a pool's ``reservations`` map (empty holder fields are left out)."""
    value: Item = {"tokens": n(tokens), "at": s(at)}
    for name in ("key_id", "provider", "model"):
        put_optional(value, name, s(getattr(holder, name)) if getattr(holder, name) else None)
    put_optional(value, "cost_bound", n(holder.cost_bound) if holder.cost_bound else None)
    return {"M": value}


def reserve_request(key: Item, rid: str, tokens: int, at: str, holder: Holder) -> Request:
    """Hold ``tokens`` if they fit: one conditional UpdateItem on an existing pool item."""
    condition = "attribute_exists(#pk) AND (attribute_not_exists(#cap) OR #rem >= :e)"
    condition += " AND attribute_not_exists(#map.#rid)"
    request = expression(
        key=key,
        values={":e": n(tokens), ":r": reservation_value(tokens, at, holder)},
        names={"#rid": rid},
        UpdateExpression="SET #rem = #rem - :e, #rsv = #rsv + :e, #map.#rid = :r",
        ConditionExpression=condition,
    )
    return {**request, "ReturnValues": "ALL_NEW", "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}


def settle_request(key: Item, rid: str, tokens: int, actual: int) -> Request:
    """Release reservation ``rid`` (``tokens``, as read) and charge ``actual``, if it is still held."""
    request = expression(
        key=key,
        values={":t": n(tokens), ":a": n(actual), ":d": n(tokens - actual)},
        names={"#rid": rid},
        UpdateExpression="SET #rem = #rem + :d, #rsv = #rsv - :t, #used = #used + :a REMOVE #map.#rid",
        ConditionExpression="#map.#rid.#tok = :t",
    )
    return {**request, "ReturnValues": "ALL_NEW"}


def settle_anonymous_request(tenant: str, pool: str, reserved: int, actual: int) -> Request:
    request = expression(
        key=pool_key(tenant, pool),
        values={":t": n(reserved), ":a": n(actual), ":d": n(reserved - actual)},
        UpdateExpression="SET #rem = #rem + :d, #rsv = #rsv - :t, #anon = #anon - :t, #used = #used + :a",
        ConditionExpression="#anon >= :t",
    )
    return {**request, "ReturnValues": "ALL_NEW"}


def capacity_request(tenant: str, pool: str, old: int | None, new: int | None) -> Request:
    """Change the capacity from ``old`` (as read) to ``new``, moving ``remaining`` by the difference."""
    change = "SET #rem = #rem + :d REMOVE #cap" if new is None else "SET #rem = #rem + :d, #cap = :c"
    unchanged = "attribute_exists(#pk) AND attribute_not_exists(#cap)" if old is None else "#cap = :old"
    request = expression(
        key=pool_key(tenant, pool),
        values={":d": n((new or 0) - (old or 0)), ":c": n(new or 0), ":old": n(old or 0)},
        UpdateExpression=change,
        ConditionExpression=unchanged,
    )
    return {**request, "ReturnValues": "ALL_NEW"}


# -------------------------------------------------------------------------------------------- sessions


def session_key(tenant: str, session_id: str) -> Item:
    return {PK: s(f"SESSION#{tenant}"), SK: s(f"SESSION#{session_id}")}


def session_item(
    tenant: str, session_id: str, messages: list[dict[str, Any]], version: int, expires_at: str, epoch: int
) -> Item:
    """Messages as one JSON string: numbers in them stay exactly what the client sent."""
    return {
        **session_key(tenant, session_id),
        "messages": s(json.dumps(messages, separators=(",", ":"), ensure_ascii=False)),
        "version": n(version),
        "expires_at": s(expires_at),
        TTL_ATTRIBUTE: n(epoch),
    }


def session_from_item(item: Item) -> tuple[list[dict[str, Any]], int, str]:
    messages: list[dict[str, Any]] = json.loads(get_s(item, "messages"))
    return messages, get_n(item, "version"), get_s(item, "expires_at")


def save_session_condition(version: int, now: str) -> Request:
    """Version 0: no session, or only an expired one (``load_session`` said ([], 0) for it)."""
    condition = "attribute_not_exists(#pk) OR #exp <= :now" if version == 0 else "#ver = :v"
    return expression(values={":now": s(now), ":v": n(version)}, ConditionExpression=condition)


def expired_sessions_scan(now: str) -> Request:
    values = {":p": s("SESSION#"), ":now": s(now)}
    filtered = "begins_with(#pk, :p) AND #exp <= :now"
    return expression(values=values, FilterExpression=filtered, ProjectionExpression="#pk, #sk")


def expired_condition(now: str) -> Request:
    return expression(values={":now": s(now)}, ConditionExpression="#exp <= :now")
