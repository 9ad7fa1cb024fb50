"""``GET /v1/budgets``: the caller's own budgets (its key's USD budget, its pools' token capacity and USD
budgets), each with kind, scope, name, period, timezone, limit, spent, reserved, remaining and resets_at.
And the admin side: ``PUT /admin/budgets/{tenant}/{pool}`` (tokens and USD), ``PUT
/admin/keys/{key_id}/budget``. The rules live in ``tollgate.budgets`` and ``tollgate.budget_admin``."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath

from ..budget_admin import change_from, set_key_budget, set_pool_budget
from ..context import AppContext
from ..errors import NotFound
from ..names import check_name
from ..schemas.tollgate import BudgetSet, KeyBudgetSet
from ..store.budget_records import BudgetRule
from .body import decode_json_object, validate
from .caller import Caller
from .tokens import pool_view


@get("/v1/budgets")
async def my_budgets(ctx: NamedDependency[AppContext], caller: NamedDependency[Caller]) -> dict[str, Any]:
    principal = caller.principal
    pools = principal.spendable_pools
    views = await ctx.ledger.budgets.views(principal.tenant, key_id=principal.key_id, pools=pools)
    return {"budgets": views}


async def _rule_view(ctx: AppContext, rule: BudgetRule | None) -> dict[str, Any] | None:
    if rule is None or rule.usd_limit is None:
        return None
    return await ctx.ledger.budgets.usd_view(rule)


def _fields(body: BudgetSet | KeyBudgetSet) -> dict[str, Any]:
    return {name: getattr(body, name) for name in body.model_fields_set}


@put("/budgets/{tenant:str}/{pool:str}", status_code=200)
async def set_budget(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[AppContext],
    tenant: FromPath[str],
    pool: FromPath[str],
) -> dict[str, Any]:
    check_name(tenant, "tenant")
    check_name(pool, "pool")
    body = validate(BudgetSet, decode_json_object(await request.body()))
    found, rule = await set_pool_budget(ctx.store, tenant, pool, change_from(_fields(body)))
    ctx.ledger.budgets.forget(tenant)
    usd = await _rule_view(ctx, rule)
    alert_at = list(rule.alert_at) if rule is not None else []
    return {"tenant": tenant, **pool_view(found), "usd_budget": usd, "alert_at": alert_at}


@put("/keys/{key_id:str}/budget", status_code=200)
async def set_key_budget_route(
    request: Request[Any, Any, Any], ctx: NamedDependency[AppContext], key_id: FromPath[str]
) -> dict[str, Any]:
    check_name(key_id, "key_id")
    body = validate(KeyBudgetSet, decode_json_object(await request.body()))
    key = await ctx.store.get_key(key_id)
    if key is None:
        raise NotFound(f"no key {key_id!r}", param="key_id")
    rule = await set_key_budget(ctx.store, key.tenant, key_id, change_from(_fields(body)))
    ctx.ledger.budgets.forget(key.tenant)
    alert_at = list(rule.alert_at) if rule is not None else []
    return {
        "tenant": key.tenant,
        "key_id": key_id,
        "usd_budget": await _rule_view(ctx, rule),
        "alert_at": alert_at,
    }
