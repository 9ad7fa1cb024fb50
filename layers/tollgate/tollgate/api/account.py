"""The caller's own records: costs, the audit chain, and sessions (always scoped to the key's tenant)."""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Annotated, Any

from litestar import delete, get
from litestar.di import NamedDependency
from litestar.params import FromQuery, PathParameter, QueryParameter

from .. import rollups
from ..context import AppContext
from ..errors import BadRequest, NotFound
from ..names import check_name
from ..schemas.limits import MAX_AUDIT_SEQ
from ..schemas.openai import NAME_PATTERN
from ..store.audit_base import AuditEntry
from ..timeutil import normalize_time
from .caller import Caller

GROUPS = ("model", "day", "key", "tenant")
MAX_PAGE = 1000


def time_param(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        return normalize_time(value)
    except ValueError as exc:  # also a time before year 1 or past year 9999 in UTC (timeutil)
        raise BadRequest(
            f"{name} must be an ISO-8601 date or time in years 1-9999 UTC ({exc})", param=name
        ) from exc


def group_param(value: str | None) -> str | None:
    if value is not None and value not in GROUPS:
        raise BadRequest(f"group_by must be one of {', '.join(GROUPS)}", param="group_by")
    return value


async def cost_summary(
    ctx: AppContext, tenant: str | None, since: str | None, until: str | None, group_by: str | None
) -> dict[str, Any]:
    """From the cost rollups, over whole UTC days (``since_day``/``until_day`` say which)."""
    chosen = (time_param(since, "since"), time_param(until, "until"), group_param(group_by))
    return {"tenant": tenant, **await rollups.cost_report(ctx.store, tenant, *chosen)}


@get("/v1/costs")
async def costs(
    ctx: NamedDependency[AppContext],
    caller: NamedDependency[Caller],
    since: FromQuery[str | None] = None,
    until: FromQuery[str | None] = None,
    group_by: FromQuery[str | None] = None,
) -> dict[str, Any]:
    principal = caller.principal
    return await cost_summary(ctx, principal.tenant, since, until, group_by)


SEGMENT_RE = re.compile(r"^(|registry|w[0-9a-f]{16})$")
CURSOR_RE = re.compile(r"^([0-9T:.Z-]{1,40})_(registry|w[0-9a-f]{16}|)_([0-9]{1,12})$")


def cursor_of(entry: AuditEntry) -> str:
    """Where the next (older) page starts: ``<at>_<segment>_<seq>`` of the oldest entry of this one."""
    return f"{entry.at}_{entry.segment}_{entry.seq}"


def parse_cursor(value: str | None) -> tuple[str, str, int] | None:
    if value is None:
        return None
    found = CURSOR_RE.fullmatch(value)
    if found is None:
        raise BadRequest("before must be a next_before value from a previous page", param="before")
    return found[1], found[2], int(found[3])


async def audit_page(
    ctx: AppContext, tenant: str, limit: int, before: str | None, segment: str | None, after_seq: int
) -> dict[str, Any]:
    """The newest ``limit`` entries before the cursor, across segments, oldest first; or, with a
    ``segment``, that segment's entries after ``after_seq`` in seq order."""
    if segment is None:
        if after_seq:
            raise BadRequest("after_seq pages one segment: give segment too", param="after_seq")
        newest = await ctx.store.recent_audit(tenant, parse_cursor(before), limit)
        entries = sorted(newest, key=lambda e: (e.at, e.segment, e.seq))
        more = len(newest) == limit
        return {"entries": entries, "next_before": cursor_of(entries[0]) if more else None}
    if not SEGMENT_RE.fullmatch(segment):
        raise BadRequest("segment must be '', 'registry' or a writer's segment id", param="segment")
    entries = await ctx.store.list_audit(tenant, after_seq=after_seq, limit=limit, segment=segment)
    return {"entries": entries, "next_after_seq": entries[-1].seq if len(entries) == limit else None}


@get("/v1/audit")
async def audit_log(
    ctx: NamedDependency[AppContext],
    caller: NamedDependency[Caller],
    after_seq: Annotated[int, QueryParameter(ge=0, le=MAX_AUDIT_SEQ)] = 0,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 100,
    before: FromQuery[str | None] = None,
    segment: FromQuery[str | None] = None,
) -> dict[str, Any]:
    """A page of the tenant's audit log (the newest entries across its writers' segments, listed oldest
    first; ``next_before`` pages back in time), and ``chain_valid`` from really verifying all of it, at
    most ``TOLLGATE_AUDIT_VERIFY_SECONDS`` ago (in this process), so reading in a loop costs a page each
    time, not the whole log. Reading is not metered (the console's Usage page reads it).

    The ranges are checked with the query's types, before the key (a 400 naming the parameter)."""
    principal = caller.principal
    page = await audit_page(ctx, principal.tenant, limit, before, segment, after_seq)
    verification = await ctx.verifications.get(ctx.store, principal.tenant, ctx.ledger.audit_key)
    return {
        "next_before": None,
        "next_after_seq": None,
        **page,
        "entries": [asdict(e) for e in page["entries"]],
        "chain_valid": verification.valid,
        "verification": verification.as_dict(),
    }


@delete("/v1/sessions/{session_id:str}", status_code=204)
async def delete_session(
    ctx: NamedDependency[AppContext],
    caller: NamedDependency[Caller],
    session_id: Annotated[str, PathParameter(min_length=1, max_length=128, pattern=NAME_PATTERN)],
) -> None:
    """A session id shaped as in the chat body's ``session_id`` (others are a 400, never a store error)."""
    principal = caller.principal
    check_name(session_id, "session_id")
    if not await ctx.store.delete_session(principal.tenant, session_id):
        raise NotFound(f"no session {session_id!r}", param="session_id")
