"""The audit chain's items and requests on DynamoDB (pure, as ``dynamodb_items``): one item per entry under
``AUDIT#<tenant>`` (``SEQ#<seq>`` for the legacy chain, ``SEG#<segment>#<seq>`` for a writer's segment),
one head item per segment, and GSI2 (``COST#<tenant>``, sorted by time) for the cost reads."""

from __future__ import annotations

import json
from typing import Any

from .audit_base import LEGACY_SEGMENT, REGISTRY_SEGMENT, AuditEntry, AuditHead
from .dynamodb_items import (
    AUDIT_DIR,
    GSI1PK,
    GSI1SK,
    GSI2,
    GSI2PK,
    GSI2SK,
    HEAD_SK,
    PK,
    SEGMENT_PREFIX,
    SEQ_PREFIX,
    SEQ_WIDTH,
    SK,
    Item,
    Request,
    expression,
    get_n,
    get_s,
    n,
    opt_n,
    opt_s,
    put_optional,
    s,
)


def seq_sk(seq: int, segment: str = LEGACY_SEGMENT) -> str:
    """Legacy entries ``SEQ#<seq>``, segmented ones ``SEG#<segment>#<seq>``."""
    if segment == LEGACY_SEGMENT:
        return f"{SEQ_PREFIX}{seq:0{SEQ_WIDTH}d}"
    return f"{SEGMENT_PREFIX}{segment}#{seq:0{SEQ_WIDTH}d}"


def head_key(tenant: str, segment: str = LEGACY_SEGMENT) -> Item:
    return {PK: s(f"AUDIT#{tenant}"), SK: s(HEAD_SK if segment == LEGACY_SEGMENT else f"{HEAD_SK}#{segment}")}


def _in_directory(segment: str) -> bool:
    """Only the legacy chain and the registry list the tenant in GSI1 (not every writer's segment)."""
    return segment in (LEGACY_SEGMENT, REGISTRY_SEGMENT)


def head_item(tenant: str, head: AuditHead, segment: str = LEGACY_SEGMENT) -> Item:
    item = {**head_key(tenant, segment), "tenant": s(tenant), "seq": n(head.seq), "hash": s(head.hash)}
    if _in_directory(segment):
        item.update({GSI1PK: s(AUDIT_DIR), GSI1SK: s(tenant)})
    return put_optional(item, "segment", s(segment) if segment else None)


def head_from_item(item: Item) -> AuditHead:
    return AuditHead(seq=get_n(item, "seq"), hash=get_s(item, "hash"))


def entry_key(tenant: str, seq: int, segment: str = LEGACY_SEGMENT) -> Item:
    return {PK: s(f"AUDIT#{tenant}"), SK: s(seq_sk(seq, segment))}


def cost_sk(at: str, seq: int, segment: str = LEGACY_SEGMENT) -> str:
    """GSI2's sort key: ``<at>#<seq>`` (legacy), ``<at>#<segment>#<seq>``; both sort by time first."""
    return f"{at}#{seq:0{SEQ_WIDTH}d}" if segment == LEGACY_SEGMENT else f"{at}#{segment}#{seq:0{SEQ_WIDTH}d}"


_ENTRY_STRINGS = (
    "tenant",
    "at",
    "request_id",
    "key_id",
    "provider",
    "model",
    "status",
    "request_sha256",
    "response_sha256",
    "prev_hash",
    "hash",
)
_ENTRY_NUMBERS = ("seq", "prompt_tokens", "completion_tokens")


def entry_item(entry: AuditEntry) -> Item:
    """Entry ``seq``; also in GSI2 (costs by tenant and time) unless it is a registry entry, and the
    first one of the legacy chain or the registry in the tenants directory."""
    item: Item = entry_key(entry.tenant, entry.seq, entry.segment)
    if entry.segment != REGISTRY_SEGMENT:
        item.update(
            {GSI2PK: s(f"COST#{entry.tenant}"), GSI2SK: s(cost_sk(entry.at, entry.seq, entry.segment))}
        )
    if entry.seq == 1 and _in_directory(entry.segment):
        item.update({GSI1PK: s(AUDIT_DIR), GSI1SK: s(entry.tenant)})
    put_optional(item, "segment", s(entry.segment) if entry.segment else None)
    item.update({name: s(getattr(entry, name)) for name in _ENTRY_STRINGS})
    item.update({name: n(getattr(entry, name)) for name in _ENTRY_NUMBERS})
    cost = entry.cost_micro_usd
    put_optional(item, "details", s(json.dumps(entry.details, sort_keys=True)) if entry.details else None)
    return put_optional(item, "cost_micro_usd", None if cost is None else n(cost))


def entry_from_item(item: Item) -> AuditEntry:
    fields: dict[str, Any] = {name: get_s(item, name) for name in _ENTRY_STRINGS}
    fields.update({name: get_n(item, name) for name in _ENTRY_NUMBERS})
    details = opt_s(item, "details")
    return AuditEntry(
        **fields,
        cost_micro_usd=opt_n(item, "cost_micro_usd"),
        details=None if details is None else json.loads(details),
        segment=opt_s(item, "segment") or LEGACY_SEGMENT,
    )


def advance_head_request(tenant: str, head: AuditHead, previous_seq: int, segment: str = "") -> Request:
    """Move an existing head from ``previous_seq`` to ``head`` (the first head is a conditional put)."""
    return expression(
        key=head_key(tenant, segment),
        values={":s": n(head.seq), ":h": s(head.hash), ":prev": n(previous_seq)},
        UpdateExpression="SET #seq = :s, #hash = :h",
        ConditionExpression="#seq = :prev",
    )


def first_head_condition() -> Request:
    """A head is created, or moved from seq 0 (a writer's new segment), by one conditional put."""
    return expression(values={":zero": n(0)}, ConditionExpression="attribute_not_exists(#pk) OR #seq = :zero")


def list_audit_request(tenant: str, after_seq: int, segment: str = LEGACY_SEGMENT) -> Request:
    last = seq_sk(10**SEQ_WIDTH - 1, segment)
    values = {":pk": head_key(tenant)[PK], ":lo": s(seq_sk(after_seq + 1, segment)), ":hi": s(last)}
    request = expression(values=values, KeyConditionExpression="#pk = :pk AND #sk BETWEEN :lo AND :hi")
    return {**request, "ConsistentRead": True}


def costs_request(tenant: str, since: str | None, until: str | None) -> Request:
    """GSI2 by tenant, ``since <= at < until`` (``<at>#<seq>`` sorts after ``<at>``, so BETWEEN works)."""
    condition = "#g2pk = :t"
    if since is not None and until is not None:
        condition += " AND #g2sk BETWEEN :since AND :until"
    elif since is not None:
        condition += " AND #g2sk >= :since"
    elif until is not None:
        condition += " AND #g2sk < :until"
    values = {":t": s(f"COST#{tenant}"), ":since": s(since or ""), ":until": s(until or "")}
    return {**expression(values=values, KeyConditionExpression=condition), "IndexName": GSI2}
