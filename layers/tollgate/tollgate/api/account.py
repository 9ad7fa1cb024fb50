"""The caller's own records: costs, the audit chain, and sessions (always scoped to the key's tenant)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from litestar import Request, delete, get
from litestar.di import NamedDependency
from litestar.params import FromQuery, PathParameter, QueryParameter

from .. import audit
from ..accounting import summarize_costs
from ..context import AppContext
from ..errors import BadRequest, NotFound
from ..names import check_name
from ..schemas.limits import MAX_AUDIT_SEQ
from ..schemas.openai import NAME_PATTERN
from ..timeutil import normalize_time
from .auth import authenticate

GROUPS = ("model", "day", "key")
MAX_PAGE = 1000


def time_param(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        return normalize_time(value)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an ISO-8601 date or time", param=name) from exc


def group_param(value: str | None) -> str | None:
    if value is not None and value not in GROUPS:
        raise BadRequest(f"group_by must be one of {', '.join(GROUPS)}", param="group_by")
    return value


async def cost_summary(
    ctx: AppContext, tenant: str | None, since: str | None, until: str | None, group_by: str | None
) -> dict[str, Any]:
    entries = await ctx.store.list_costs(
        tenant, since=time_param(since, "since"), until=time_param(until, "until")
    )
    return {"tenant": tenant, **summarize_costs(entries, group_param(group_by))}


@get("/v1/costs")
async def costs(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[AppContext],
    since: FromQuery[str | None] = None,
    until: FromQuery[str | None] = None,
    group_by: FromQuery[str | None] = None,
) -> dict[str, Any]:
    principal = await authenticate(request, ctx)
    return await cost_summary(ctx, principal.tenant, since, until, group_by)


@get("/v1/audit")
async def audit_log(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[AppContext],
    after_seq: Annotated[int, QueryParameter(ge=0, le=MAX_AUDIT_SEQ)] = 0,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 100,
) -> dict[str, Any]:
    """A page of the tenant's chain, and ``chain_valid`` from really verifying the whole chain.

    The ranges are checked with the query's types, before the key (a 400 naming the parameter)."""
    principal = await authenticate(request, ctx)
    entries = await ctx.store.list_audit(principal.tenant, after_seq=after_seq, limit=limit)
    verification = await audit.verify(ctx.store, principal.tenant, ctx.ledger.audit_key)
    return {
        "entries": [asdict(e) for e in entries],
        "next_after_seq": entries[-1].seq if len(entries) == limit else None,
        "chain_valid": verification.valid,
        "verification": verification.as_dict(),
    }


@delete("/v1/sessions/{session_id:str}", status_code=204)
async def delete_session(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[AppContext],
    session_id: Annotated[str, PathParameter(min_length=1, max_length=128, pattern=NAME_PATTERN)],
) -> None:
    """A session id shaped as in the chat body's ``session_id`` (others are a 400, never a store error)."""
    principal = await authenticate(request, ctx)
    check_name(session_id, "session_id")
    if not await ctx.store.delete_session(principal.tenant, session_id):
        raise NotFound(f"no session {session_id!r}", param="session_id")
