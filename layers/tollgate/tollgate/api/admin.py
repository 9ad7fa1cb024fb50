"""The admin API (all tenants), gated by TOLLGATE_ADMIN_KEY: keys, budgets, costs, audit, sweeps.

Mounted at /admin by ``tollgate serve``; on AWS it is its own function (Mangum, buffered).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from litestar import Request, Router, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter

from .. import audit, rollups
from ..budget_admin import key_budget_change, set_key_budget
from ..context import AppContext
from ..errors import NotFound
from ..keys import new_key_record, store_key
from ..names import check_name, check_optional
from ..schemas.limits import MAX_SWEEP_AGE_SECONDS
from ..schemas.openai import NAME_PATTERN
from ..schemas.tollgate import KeyCreate
from ..store.base import ApiKey
from ..timeutil import now_str
from .account import cost_summary, time_param
from .admin_limits import ROUTES as LIMIT_ROUTES
from .admin_rotation import rotate_key
from .auth import admin_guard
from .body import decode_json_object, validate
from .budgets import set_budget, set_key_budget_route
from .tokens import pool_view

MAX_KEYS_PAGE = 1000  # GET /admin/keys: the most (and default) keys of one page
MAX_TENANTS_PAGE = 1000  # GET /admin/budgets: the most (and default) tenants of one page
MAX_DIFFERENCES = 1000  # GET /admin/costs/verify: the differing rows named in one answer

# a ?tenant= filter shaped like the tenant names keys are created with (others: a 400, never a store error).
# The pattern documents it (OpenAPI) and is checked with re.search, whose ``$`` also matches before a
# trailing newline: each handler checks the name itself (``check_optional``, a full match).
TenantFilter = Annotated[str | None, QueryParameter(min_length=1, max_length=64, pattern=NAME_PATTERN)]


def key_view(key: ApiKey) -> dict[str, Any]:
    view = asdict(key)
    del view["key_hash"]
    view["models"] = list(key.models) if key.models is not None else None
    view["pools"] = list(key.pools)
    return view


@post("/keys", status_code=201)
async def create_key(request: Request[Any, Any, Any], ctx: NamedDependency[AppContext]) -> dict[str, Any]:
    body = validate(KeyCreate, decode_json_object(await request.body()))
    models = tuple(body.models) if body.models is not None else None
    key, record = new_key_record(
        body.tenant,
        name=body.name,
        models=models,
        pool=body.pool,
        pools=tuple(body.pools),
        expires_in=body.expires_in,
    )
    change = key_budget_change(
        body.budget_usd, body.budget_period, body.budget_timezone, body.budget_alert_at
    )
    created = await store_key(ctx.store, record)
    rule = await set_key_budget(ctx.store, record.tenant, record.key_id, change)
    usd = None if rule is None or rule.usd_limit is None else await ctx.ledger.budgets.usd_view(rule)
    return {"key": key, **key_view(record), "pools_created": created, "usd_budget": usd}


@get("/keys")
async def list_keys(
    ctx: NamedDependency[AppContext],
    tenant: TenantFilter = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_KEYS_PAGE)] = MAX_KEYS_PAGE,
    after: Annotated[str | None, QueryParameter(min_length=1, max_length=64, pattern=NAME_PATTERN)] = None,
) -> dict[str, Any]:
    """A page of keys in key_id order (``next_after``: the ``after`` of the next page, null at the end)."""
    chosen = check_optional(tenant, "tenant"), check_optional(after, "key_id", param="after")
    keys = await ctx.store.page_keys(*chosen, limit)
    next_after = keys[-1].key_id if len(keys) == limit else None
    return {"keys": [key_view(k) for k in keys], "next_after": next_after}


@post("/keys/{key_id:str}/revoke", status_code=200)
async def revoke_key(ctx: NamedDependency[AppContext], key_id: FromPath[str]) -> dict[str, Any]:
    record = await ctx.store.revoke_key(check_name(key_id, "key_id"), now_str())
    ctx.authenticator.forget(key_id)
    if record is None:
        raise NotFound(f"no key {key_id!r}", param="key_id")
    return key_view(record)


@get("/budgets")
async def list_budgets(
    ctx: NamedDependency[AppContext],
    tenant: TenantFilter = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_TENANTS_PAGE)] = MAX_TENANTS_PAGE,
    after: TenantFilter = None,
) -> dict[str, Any]:
    """The budgets of at most ``limit`` tenants in name order, after the tenant ``after``
    (``next_after``: where the next page starts, null at the end)."""
    tenant, after = check_optional(tenant, "tenant"), check_optional(after, "tenant", param="after")
    tenants = [tenant] if tenant else [t for t in await _budget_tenants(ctx) if after is None or t > after]
    page = tenants[:limit]
    pools = [{"tenant": p.tenant, **pool_view(p)} for t in page for p in await ctx.store.list_pools(t)]
    views = [{"tenant": t, **v} for t in page for v in await ctx.ledger.budgets.views(t)]
    next_after = page[-1] if len(tenants) > limit else None
    return {"pools": pools, "budgets": views, "next_after": next_after}


async def _budget_tenants(ctx: AppContext) -> list[str]:
    """Every tenant with a pool or a budget rule, in name order."""
    rules = {r.tenant for r in await ctx.store.list_budget_rules()}
    return sorted({p.tenant for p in await ctx.store.list_pools()} | rules)


@get("/costs")
async def admin_costs(
    ctx: NamedDependency[AppContext],
    tenant: TenantFilter = None,
    since: FromQuery[str | None] = None,
    until: FromQuery[str | None] = None,
    group_by: FromQuery[str | None] = None,
) -> dict[str, Any]:
    return await cost_summary(ctx, check_optional(tenant, "tenant"), since, until, group_by)


@get("/costs/verify")
async def verify_costs(
    ctx: NamedDependency[AppContext],
    tenant: TenantFilter = None,
    since: FromQuery[str | None] = None,
    until: FromQuery[str | None] = None,
) -> dict[str, Any]:
    """Recompute the cost rollups of whole UTC days from the audit entries; ``valid`` false names the rows
    that differ, the first ``MAX_DIFFERENCES`` of ``differences_total`` (a buffered Lambda answer holds at
    most 6 MB; narrow the range for the rest). Nothing is changed: ``tollgate costs --verify --repair``
    repairs."""
    chosen = check_optional(tenant, "tenant"), time_param(since, "since"), time_param(until, "until")
    result = await rollups.verify(ctx.store, *chosen)
    differences = result["differences"]
    return {**result, "differences": differences[:MAX_DIFFERENCES], "differences_total": len(differences)}


@get("/audit/verify")
async def verify_audit(ctx: NamedDependency[AppContext], tenant: TenantFilter = None) -> dict[str, Any]:
    tenant = check_optional(tenant, "tenant")
    tenants = [tenant] if tenant else await ctx.store.audit_tenants()
    results = {t: (await audit.verify(ctx.store, t, ctx.ledger.audit_key)).as_dict() for t in tenants}
    if tenant and results[tenant]["entries"] == 0 and results[tenant]["head_seq"] == 0:
        # a typo must not read as a verified chain (as ``tollgate audit verify --tenant``: exit 2)
        raise NotFound(f"no audit entries for tenant {tenant!r}", param="tenant")
    return {"valid": all(r["valid"] for r in results.values()), "tenants": results}


@post("/sweep", status_code=200)
async def sweep(
    ctx: NamedDependency[AppContext],
    older_than: Annotated[int | None, QueryParameter(le=MAX_SWEEP_AGE_SECONDS)] = None,
) -> dict[str, int]:
    """Charge and audit reservations older than TOLLGATE_RESERVATION_MAX_AGE_SECONDS (``older_than``, in
    seconds, may only be longer: 400 ``sweep_too_young`` otherwise, and at most 100 years); delete expired
    sessions."""
    return await ctx.sweeper.sweep(older_than)


admin_router = Router(
    path="/admin",
    guards=[admin_guard],
    route_handlers=[
        create_key,
        list_keys,
        revoke_key,
        rotate_key,
        set_budget,
        set_key_budget_route,
        list_budgets,
        admin_costs,
        verify_costs,
        verify_audit,
        sweep,
        *LIMIT_ROUTES,
    ],
)
