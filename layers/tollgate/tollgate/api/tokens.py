"""hoosh-compatible token pools, scoped to the caller's tenant: check, reserve, report, list."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.di import NamedDependency

from ..context import AppContext
from ..errors import BadRequest, BudgetExceeded
from ..schemas.tollgate import TokensReport, TokensRequest
from ..store.base import Overdrawn, Pool
from ..timeutil import now_str
from .auth import authenticate
from .body import decode_json_object, validate


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


@post("/v1/tokens/check", status_code=200)
async def tokens_check(request: Request[Any, Any, Any], ctx: NamedDependency[AppContext]) -> dict[str, Any]:
    principal = await authenticate(request, ctx)
    body: TokensRequest = await _body(request, TokensRequest)
    pool = await ctx.store.get_pool(principal.tenant, body.pool)
    available = None if pool is None else pool.remaining
    return {"allowed": available is None or available >= body.tokens, "available": available}


@post("/v1/tokens/reserve", status_code=200)
async def tokens_reserve(request: Request[Any, Any, Any], ctx: NamedDependency[AppContext]) -> dict[str, Any]:
    principal = await authenticate(request, ctx)
    body: TokensRequest = await _body(request, TokensRequest)
    try:
        pool = await ctx.store.reserve(principal.tenant, body.pool, None, body.tokens, now_str())
    except Overdrawn as exc:
        raise BudgetExceeded(
            f"budget exhausted for pool {body.pool!r}: {max(exc.available, 0)} available"
        ) from exc
    return {"reserved": body.tokens, "available": pool.remaining}


@post("/v1/tokens/report", status_code=200)
async def tokens_report(request: Request[Any, Any, Any], ctx: NamedDependency[AppContext]) -> dict[str, Any]:
    principal = await authenticate(request, ctx)
    body: TokensReport = await _body(request, TokensReport)
    pool = await ctx.store.settle_anonymous(principal.tenant, body.pool, body.reserved, body.actual)
    if pool is None:
        raise BadRequest(
            f"pool {body.pool!r} holds fewer than {body.reserved} reserved tokens", param="reserved"
        )
    return {"used": pool.used, "available": pool.remaining}


@get("/v1/tokens/pools")
async def tokens_pools(request: Request[Any, Any, Any], ctx: NamedDependency[AppContext]) -> dict[str, Any]:
    principal = await authenticate(request, ctx)
    return {"pools": [pool_view(p) for p in await ctx.store.list_pools(principal.tenant)]}
