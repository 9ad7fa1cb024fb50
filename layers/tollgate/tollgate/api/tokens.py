"""hoosh-compatible token pools, scoped to the caller's key (its pools) and tenant: check, reserve, report,
list. The rules live in ``tollgate.token_pools``."""

from __future__ import annotations

import logging
from typing import Any

import anyio
from litestar import Request, get, post
from litestar.di import NamedDependency

from .. import token_pools
from ..context import AppContext
from ..logs import log_event
from ..schemas.tollgate import TokensReport, TokensRequest
from ..store.base import Pool
from ..timeutil import format_time, parse_time
from .body import decode_json_object, validate
from .caller import METERED, Caller

logger = logging.getLogger(__name__)


def pool_view(pool: Pool) -> dict[str, Any]:
    return {
        "pool": pool.pool,
        "capacity": pool.capacity,
        "used": pool.used,
        "reserved": pool.reserved,
        "remaining": pool.remaining,
        "open_reservations": len(pool.reservations),
    }


async def _body(request: Request[Any, Any, Any], model: type[Any]) -> Any:
    return validate(model, decode_json_object(await request.body()))


@post("/v1/tokens/check", status_code=200, opt={METERED: True})
async def tokens_check(
    request: Request[Any, Any, Any], ctx: NamedDependency[AppContext], caller: NamedDependency[Caller]
) -> dict[str, Any]:
    principal = caller.principal
    body: TokensRequest = await _body(request, TokensRequest)
    available = (await token_pools.existing_pool(ctx.store, principal, body.pool or principal.pool)).remaining
    return {"allowed": available is None or available >= body.tokens, "available": available}


@post("/v1/tokens/reserve", status_code=200, opt={METERED: True})
async def tokens_reserve(
    request: Request[Any, Any, Any], ctx: NamedDependency[AppContext], caller: NamedDependency[Caller]
) -> dict[str, Any]:
    principal = caller.principal
    body: TokensRequest = await _body(request, TokensRequest)
    alerts = None if ctx.alerts is None else (ctx.alerts, ctx.ledger.budgets)
    admission, now = caller.admission, ctx.clock()  # one time: the TPM bucket's minute and the hold's
    if admission is not None:  # the tokens count against TPM when reserved (the report corrects them)
        await admission.admit_tokens(body.tokens, now)
    try:
        reservation_id, pool = await token_pools.reserve(
            ctx.store, principal, body.pool or principal.pool, body.tokens, alerts, format_time(now)
        )
    except BaseException:
        if admission is not None:
            with anyio.CancelScope(shield=True):
                await admission.settle(0)  # refused: what it counted is given back
        raise
    return {"reservation_id": reservation_id, "reserved": body.tokens, "available": pool.remaining}


@post("/v1/tokens/report", status_code=200, opt={METERED: True})
async def tokens_report(
    request: Request[Any, Any, Any], ctx: NamedDependency[AppContext], caller: NamedDependency[Caller]
) -> dict[str, Any]:
    principal = caller.principal
    body: TokensReport = await _body(request, TokensReport)
    pool, hold = await token_pools.report_hold(
        ctx.store,
        principal,
        body.pool or principal.pool,
        body.actual,
        reservation_id=body.reservation_id,
        reserved=body.reserved,
    )
    if caller.admission is not None and hold is not None:  # the reserve's TPM count, corrected
        held, held_at = hold
        try:
            await caller.admission.correct(held, parse_time(held_at), body.actual)
        except Exception as exc:  # the usage is recorded; a rate-limit count left high only refuses early
            error = f"{type(exc).__name__}: {exc}"
            log_event(logger, logging.ERROR, "rate_limit_correction_failed", error=error)
    return {"used": pool.used, "available": pool.remaining}


@get("/v1/tokens/pools")
async def tokens_pools(ctx: NamedDependency[AppContext], caller: NamedDependency[Caller]) -> dict[str, Any]:
    """The pools this key may spend from (not the tenant's others)."""
    principal = caller.principal
    allowed = set(principal.spendable_pools)
    pools = await ctx.store.list_pools(principal.tenant)
    return {"pools": [pool_view(p) for p in pools if p.pool in allowed]}
