"""The DynamoDB side of the sweep and of a late settle: pure request builders (no I/O).

A pool item keeps a ``swept`` map beside ``reservations``: id -> {tokens, at} for each reservation the
sweep charged (its upper bound), so that a settle arriving after the sweep corrects the charge to the real
usage exactly once (it REMOVEs the marker in the same conditional write). Pool items written before the
map existed get it from ``swept_map_request`` (a nested path can only be set inside an existing map).
Every request here is one conditional UpdateItem on one pool item or lease shard (DESIGN.md §5), named
by its key.
"""

from __future__ import annotations

from .dynamodb_items import Item, Request, expression, n, s

SWEPT = {"#swept": "swept"}


def swept_map_request(key: Item) -> Request:
    """Give an older pool item its empty ``swept`` map (changes nothing once it is there)."""
    return expression(
        key=key,
        values={":empty": {"M": {}}},
        names=SWEPT,
        UpdateExpression="SET #swept = :empty",
        ConditionExpression="attribute_exists(#pk) AND attribute_not_exists(#swept)",
    )


def sweep_request(key: Item, rid: str, tokens: int, at: str, key_id: str = "") -> Request:
    """Charge reservation ``rid``'s ``tokens`` (as read), if still held, and leave its marker (with the
    holder's key: only that key may report the late usage).

    ``remaining`` does not move: the tokens go from reserved to used."""
    marker: Item = {"tokens": n(tokens), "at": s(at)}
    if key_id:
        marker["key_id"] = s(key_id)
    request = expression(
        key=key,
        values={":t": n(tokens), ":m": {"M": marker}},
        names={**SWEPT, "#rid": rid},
        UpdateExpression="SET #rsv = #rsv - :t, #used = #used + :t, #swept.#rid = :m REMOVE #map.#rid",
        ConditionExpression="#map.#rid.#tok = :t AND attribute_exists(#swept)",
    )
    return {**request, "ReturnValues": "ALL_NEW"}


def correct_request(key: Item, rid: str, charged: int, actual: int) -> Request:
    """A late settle of a swept reservation: charge ``actual - charged`` more and drop the marker."""
    request = expression(
        key=key,
        values={":c": n(charged), ":d": n(actual - charged)},
        names={**SWEPT, "#rid": rid},
        UpdateExpression="SET #used = #used + :d, #rem = #rem - :d REMOVE #swept.#rid",
        ConditionExpression="#swept.#rid.#tok = :c",
    )
    return {**request, "ReturnValues": "ALL_NEW"}


def drop_marker_request(key: Item, rid: str, at: str) -> Request:
    """Forget the marker of a request that never came back (if it is still the one swept at ``at``)."""
    return expression(
        key=key,
        values={":at": s(at)},
        names={**SWEPT, "#rid": rid, "#at": "at"},
        UpdateExpression="REMOVE #swept.#rid",
        ConditionExpression="#swept.#rid.#at = :at",
    )


def settle_projection(rid: str) -> Request:
    """The reservation and its marker, whichever is there (one consistent GetItem)."""
    return expression(names={**SWEPT, "#rid": rid}, ProjectionExpression="#map.#rid, #swept.#rid")
