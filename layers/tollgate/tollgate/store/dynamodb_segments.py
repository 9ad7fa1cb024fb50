"""Requests that read a tenant's audit segments together (pure, no I/O): its heads, every entry in key
order, and the newest request entries by time.

One partition ``AUDIT#<tenant>`` holds them all: ``HEAD`` and ``HEAD#<segment>`` sort first, then the
segmented entries ``SEG#<segment>#<seq>`` (each segment contiguous, in seq order), then the legacy chain's
``SEQ#<seq>``. The newest entries come from GSI2 (``COST#<tenant>``, sorted by time; the registry is not
in it), read backwards.
"""

from __future__ import annotations

from .dynamodb_audit_items import cost_sk, head_key, seq_sk
from .dynamodb_items import (
    GSI2,
    HEAD_SK,
    MAX_SEQ_SK,
    PK,
    SEGMENT_PREFIX,
    Request,
    expression,
    s,
)


def heads_request(tenant: str) -> Request:
    values = {":pk": head_key(tenant)[PK], ":h": s(HEAD_SK)}
    request = expression(values=values, KeyConditionExpression="#pk = :pk AND begins_with(#sk, :h)")
    return {**request, "ConsistentRead": True}


def scan_request(tenant: str, after: tuple[str, int] | None) -> Request:
    """Every entry after (segment, seq): from the next seq of that segment on, to the legacy chain's end."""
    low = SEGMENT_PREFIX if after is None else seq_sk(after[1] + 1, after[0])
    values = {":pk": head_key(tenant)[PK], ":lo": s(low), ":hi": s(MAX_SEQ_SK)}
    request = expression(values=values, KeyConditionExpression="#pk = :pk AND #sk BETWEEN :lo AND :hi")
    return {**request, "ConsistentRead": True}


def recent_request(tenant: str, before: tuple[str, str, int] | None) -> Request:
    """GSI2 backwards (newest first), strictly before the entry (at, segment, seq) when given."""
    condition = "#g2pk = :t" if before is None else "#g2pk = :t AND #g2sk < :before"
    cursor = "" if before is None else cost_sk(before[0], before[2], before[1])
    values = {":t": s(f"COST#{tenant}"), ":before": s(cursor)}
    request = expression(values=values, KeyConditionExpression=condition)
    return {**request, "IndexName": GSI2, "ScanIndexForward": False}
