"""The admin API's rate limits (``tollgate.limits_admin``), mounted on the admin router:

    PUT    /admin/limits/{tenant}                  {"rpm": 60, "tpm": 100000}   the tenant's limit
    PUT    /admin/limits/{tenant}/keys/{key_id}    {"rpm": 20}                  one key's limit
    GET    /admin/limits[?tenant=T]
    DELETE /admin/limits/{tenant}[/keys/{key_id}]

A change takes effect at once in this process and within ``TOLLGATE_KEY_CACHE_SECONDS`` everywhere.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from .. import limits_admin
from ..context import AppContext
from ..names import check_name, check_optional
from ..schemas.openai import NAME_PATTERN
from ..schemas.rate_limits import LimitSet
from ..store.limits_base import RateLimit
from .body import decode_json_object, validate

# as api.admin's: the pattern documents the filter; ``check_optional`` checks it (a full match)
TenantFilter = Annotated[str | None, QueryParameter(min_length=1, max_length=64, pattern=NAME_PATTERN)]


async def _set(request: Request[Any, Any, Any], ctx: AppContext, tenant: str, key_id: str | None) -> Any:
    check_name(tenant, "tenant")
    if key_id is not None:
        check_name(key_id, "key_id")
    body = validate(LimitSet, decode_json_object(await request.body()))
    limit = await limits_admin.set_limit(ctx.store, RateLimit(tenant, key_id, body.rpm, body.tpm))
    ctx.limits.forget(tenant)
    return limits_admin.limit_view(limit)


@put("/limits/{tenant:str}", status_code=200)
async def set_tenant_limit(
    request: Request[Any, Any, Any], ctx: NamedDependency[AppContext], tenant: FromPath[str]
) -> dict[str, Any]:
    view: dict[str, Any] = await _set(request, ctx, tenant, None)
    return view


@put("/limits/{tenant:str}/keys/{key_id:str}", status_code=200)
async def set_key_limit(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[AppContext],
    tenant: FromPath[str],
    key_id: FromPath[str],
) -> dict[str, Any]:
    view: dict[str, Any] = await _set(request, ctx, tenant, key_id)
    return view


@get("/limits")
async def list_limits(ctx: NamedDependency[AppContext], tenant: TenantFilter = None) -> dict[str, Any]:
    limits = await ctx.store.list_limits(check_optional(tenant, "tenant"))
    return {"limits": [limits_admin.limit_view(lim) for lim in limits]}


async def _clear(ctx: AppContext, tenant: str, key_id: str | None) -> dict[str, Any]:
    check_name(tenant, "tenant")
    if key_id is not None:
        check_name(key_id, "key_id")
    await limits_admin.clear_limit(ctx.store, tenant, key_id)
    ctx.limits.forget(tenant)
    return {"tenant": tenant, "key_id": key_id, "cleared": True}


@delete("/limits/{tenant:str}", status_code=200)
async def clear_tenant_limit(ctx: NamedDependency[AppContext], tenant: FromPath[str]) -> dict[str, Any]:
    return await _clear(ctx, tenant, None)


@delete("/limits/{tenant:str}/keys/{key_id:str}", status_code=200)
async def clear_key_limit(
    ctx: NamedDependency[AppContext], tenant: FromPath[str], key_id: FromPath[str]
) -> dict[str, Any]:
    return await _clear(ctx, tenant, key_id)


ROUTES = [set_tenant_limit, set_key_limit, list_limits, clear_tenant_limit, clear_key_limit]
