"""``tollgate budgets set | show`` and the budget options of ``tollgate keys create``: token pools and USD
budgets with periods. Every value is checked where it is parsed (one line, exit 2, nothing written)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from .accounting import usd
from .budget_admin import (
    BudgetChange,
    alert_percents,
    change_from,
    micro_usd,
    set_key_budget,
    set_pool_budget,
)
from .budget_periods import PERIODS, check_timezone
from .cli import _print, _with_store
from .cli_checks import require_key, require_tenant
from .config import Settings
from .context import AppContext
from .errors import BadRequest
from .names import printable
from .store.budget_records import BudgetRule


def _checked(parse: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    def check(value: str) -> Any:
        try:
            return parse(value)
        except BadRequest as exc:
            raise argparse.ArgumentTypeError(exc.message) from None

    check.__name__ = name
    return check


usd_type = _checked(lambda v: micro_usd(v, param="USD amount"), "USD amount")
timezone_type = _checked(check_timezone, "timezone")
alerts_type = _checked(lambda v: alert_percents(v, param="alert thresholds"), "percent list")


def _refuse(message: str) -> int:
    print(f"tollgate: {printable(message)}", file=sys.stderr)
    return 2


def _change(args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    """The budget fields given on the command line (micro-USD already)."""
    fields: dict[str, Any] = {}
    for name in ("usd", "period", "timezone", "alert_at"):
        value = getattr(args, prefix + name, None)
        if value is not None:
            fields[name] = value
    return fields


def _usd_change(fields: dict[str, Any]) -> BudgetChange:
    return change_from({**fields, "usd": usd(fields["usd"])} if "usd" in fields else fields)


def key_budget(args: argparse.Namespace) -> BudgetChange | None:
    """``keys create --budget-usd ... --budget-period ...``: the key's budget, or None."""
    fields = _change(args, "budget_")
    if not fields:
        return None
    if "usd" not in fields and ("period" in fields or "timezone" in fields):
        raise BadRequest("--budget-period and --budget-timezone need --budget-usd")
    return _usd_change(fields)


async def store_key_budget(
    store: Any, tenant: str, key_id: str, change: BudgetChange | None
) -> dict[str, Any] | None:
    if change is None:
        return None
    rule = await set_key_budget(store, tenant, key_id, change)
    return await _usd_view(store, rule)


async def _usd_view(store: Any, rule: BudgetRule | None) -> dict[str, Any] | None:
    if rule is None or rule.usd_limit is None:
        return None
    return await AppContext.build(Settings(), store, allow_open=False).ledger.budgets.usd_view(rule)


def budgets_set(args: argparse.Namespace) -> int:
    fields = _change(args)
    if args.tokens is not None:
        if args.key:
            return _refuse("--tokens is a pool's capacity; a key's budget is in USD (--usd)")
        fields["tokens"] = args.tokens
    if not fields:
        return _refuse(
            "give --tokens, --usd, --period, --timezone or --alert-at (see tollgate budgets set --help)"
        )
    change = _usd_change(fields)

    async def apply(store: Any, _: Settings) -> dict[str, Any]:
        if args.key:
            await require_key(store, args.tenant, args.key)
            rule = await set_key_budget(store, args.tenant, args.key, change)
            return {"tenant": args.tenant, "key_id": args.key, "usd_budget": await _usd_view(store, rule)}
        from .api.tokens import pool_view

        pool, rule = await set_pool_budget(store, args.tenant, args.pool, change)
        usd_budget = await _usd_view(store, rule)
        alert_at = list(rule.alert_at) if rule is not None else []
        return {"tenant": args.tenant, **pool_view(pool), "usd_budget": usd_budget, "alert_at": alert_at}

    _print(_with_store(apply))  # an unknown key: NotFound, exit 2 (cli.main)
    return 0


def _amount(view: dict[str, Any], name: str) -> str:
    value = view[name]
    if value is None:
        return "unlimited" if name in ("limit", "remaining") else "-"
    return f"${usd(value)}" if view["kind"] == "usd" else str(value)


def budgets_show(args: argparse.Namespace) -> int:
    async def show(store: Any, settings: Settings) -> list[dict[str, Any]]:
        budgets = AppContext.build(settings, store, allow_open=False).ledger.budgets
        if args.tenant:
            await require_tenant(store, args.tenant)
        tenants = (
            [args.tenant]
            if args.tenant
            else sorted(
                {p.tenant for p in await store.list_pools()}
                | {r.tenant for r in await store.list_budget_rules()}
            )
        )
        return [{"tenant": t, **view} for t in tenants for view in await budgets.views(t)]

    rows = _with_store(show)
    if args.json:
        _print(rows)
        return 0
    print(
        f"{'tenant':<12} {'kind':<6} {'scope':<5} {'name':<20} {'period':<8} {'limit':>16} {'spent':>16} "
        f"{'reserved':>14} {'remaining':>16}  resets_at (timezone)  alert_at"
    )
    for row in rows:
        zone = f" ({row['timezone']})" if row["timezone"] and row["period"] != "none" else ""
        resets = (row["resets_at"] or "never") + zone
        alerts = ",".join(str(a) for a in row["alert_at"]) or "-"
        print(
            f"{printable(row['tenant']):<12} {row['kind']:<6} {row['scope']:<5} {printable(row['name']):<20} "
            f"{row['period']:<8} {_amount(row, 'limit'):>16} {_amount(row, 'spent'):>16} "
            f"{_amount(row, 'reserved'):>14} {_amount(row, 'remaining'):>16}  {resets}  {alerts}"
        )
    return 0


_PERIOD_HELP = "calendar period: daily, weekly (from Monday), monthly, or none (never resets; the default)"
_ZONE_HELP = "IANA timezone the period follows (default UTC), e.g. Europe/Berlin"
_ALERT_HELP = "alert thresholds in percent of the budget, comma-separated (e.g. 50,80,100)"


def add_budget_set_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--usd", type=usd_type, help="a USD budget per period (50, 12.5); 0: no priced model")
    parser.add_argument("--period", choices=PERIODS, help=_PERIOD_HELP)
    parser.add_argument("--timezone", type=timezone_type, help=_ZONE_HELP)
    parser.add_argument("--alert-at", dest="alert_at", type=alerts_type, help=_ALERT_HELP)


def add_key_budget_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--budget-usd", type=usd_type, help="the key's own USD budget per --budget-period")
    parser.add_argument("--budget-period", choices=PERIODS, help=_PERIOD_HELP)
    parser.add_argument("--budget-timezone", type=timezone_type, help=_ZONE_HELP)
    parser.add_argument("--budget-alert-at", type=alerts_type, help=_ALERT_HELP)
