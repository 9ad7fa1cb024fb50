"""``tollgate keys | budgets | audit | costs``: the admin operations from the command line."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from typing import Any

from . import audit
from .api.admin import key_view
from .cli import _print, _with_store
from .cli_args import count_type, label_type, models_type, name_type, names_type
from .cli_budgets import (
    add_budget_set_arguments,
    add_key_budget_arguments,
    budgets_set,
    budgets_show,
    key_budget,
    store_key_budget,
)
from .cli_checks import require_tenant
from .cli_costs import add_costs_command
from .cli_rotate import add_rotate_command
from .config import Settings
from .context import AppContext
from .errors import BadRequest, NotFound
from .keys import new_key_record, store_key
from .names import printable
from .schemas.limits import MAX_BUDGET_TOKENS, MAX_EXPIRES_IN_SECONDS, MAX_SWEEP_AGE_SECONDS
from .timeutil import now_str


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(name.strip() for name in (text or "").split(",") if name.strip())


def keys_create(args: argparse.Namespace) -> int:
    models = _names(args.models) if args.models else None
    try:
        budget = key_budget(args)
    except BadRequest as exc:
        print(f"tollgate: {exc.message}", file=sys.stderr)
        return 2
    key, record = new_key_record(
        args.tenant,
        name=args.name,
        models=models,
        pool=args.pool,
        pools=args.pools,
        expires_in=args.expires_in,
    )

    async def create(store: Any, _: Settings) -> tuple[list[str], dict[str, Any] | None]:
        created = await store_key(store, record)
        return created, await store_key_budget(store, record.tenant, record.key_id, budget)

    created, usd_budget = _with_store(create)
    if args.json:
        _print({"key": key, **key_view(record), "pools_created": created, "usd_budget": usd_budget})
    else:
        pools = ", ".join(record.all_pools)
        print(
            f"{key}\n\nkey_id {record.key_id}, tenant {record.tenant}, pools {pools}"
            f"{' (created unlimited: ' + ', '.join(created) + ')' if created else ''}. "
            "This is the only time the key is shown; tollgate stores only its SHA-256."
        )
    return 0


def keys_list(args: argparse.Namespace) -> int:
    async def listing(store: Any, _: Settings) -> list[dict[str, Any]]:
        if args.tenant:
            await require_tenant(store, args.tenant)  # a typo is exit 2, not "no keys"
        return [key_view(k) for k in await store.list_keys(args.tenant)]

    rows = _with_store(listing)
    if args.json:
        _print(rows)
    for row in [] if args.json else rows:
        state = (
            "revoked"
            if row["revoked_at"]
            else ("expires " + row["expires_at"] if row["expires_at"] else "active")
        )
        tenant, pool, name = (printable(row[field] or "") for field in ("tenant", "pool", "name"))
        print(f"{printable(row['key_id'])}  {tenant:<16} {pool:<12} {printable(state):<20} {name}")
    return 0


def keys_revoke(args: argparse.Namespace) -> int:
    async def revoke(store: Any, _: Settings) -> Any:
        if await store.revoke_key(args.key_id, now_str()) is None:
            raise NotFound(f"no key {args.key_id!r}", param="key_id")  # exit 2 (cli.main)

    _with_store(revoke)
    print(f"revoked {args.key_id}")
    return 0


def sweep(args: argparse.Namespace) -> int:
    """Charge and audit reservations a crashed function never settled; delete expired sessions.

    ``--older-than`` below TOLLGATE_RESERVATION_MAX_AGE_SECONDS is refused (exit 2, nothing swept)."""
    settings = Settings()
    if args.older_than is not None and args.older_than < settings.reservation_max_age_seconds:
        print(
            f"tollgate: --older-than {args.older_than} is below TOLLGATE_RESERVATION_MAX_AGE_SECONDS "
            f"({settings.reservation_max_age_seconds}); younger reservations may be live requests",
            file=sys.stderr,
        )
        return 2

    async def run(store: Any, settings: Settings) -> dict[str, int]:
        sweeper = AppContext.build(settings, store, allow_open=False).sweeper
        return await sweeper.sweep(args.older_than)

    _print(_with_store(run))
    return 0


def audit_verify(args: argparse.Namespace) -> int:
    async def check(store: Any, settings: Settings) -> dict[str, audit.Verification]:
        tenants = [args.tenant] if args.tenant else await store.audit_tenants()
        return {t: await audit.verify(store, t, settings.audit_hmac_key()) for t in tenants}

    results = _with_store(check)
    if args.tenant and results[args.tenant].entries == 0 and results[args.tenant].head_seq == 0:
        # a tenant with no audit log is a wrong argument (exit 2), not a chain that failed (exit 1)
        raise NotFound(f"no audit entries for tenant {args.tenant!r}", param="tenant")
    for tenant, result in results.items():
        print(_verification_line(tenant, result))
    return 0 if all(r.valid for r in results.values()) else 1


def _verification_line(tenant: str, result: audit.Verification) -> str:
    counts = f"{result.entries} entries in {result.segments} segment{'s' if result.segments != 1 else ''}"
    if result.valid:
        note = f" ({printable(result.problem)})" if result.problem else ""
        return f"{printable(tenant)}: ok, {counts}, {result.head_seq} confirmed by heads{note}"
    where = f"segment {result.segment}" if result.segment else "the legacy chain"
    return f"{printable(tenant)}: BROKEN at seq {result.first_bad_seq} ({where}): {printable(result.problem)}"


def audit_export(args: argparse.Namespace) -> int:
    """Every tenant's entries (every segment and the registry) merged by time, as JSON Lines."""

    async def export(store: Any, _: Settings) -> None:
        import json

        if args.tenant:
            await require_tenant(store, args.tenant)
        tenants = [args.tenant] if args.tenant else await store.audit_tenants()
        for tenant in tenants:
            async for entry in audit.export_by_time(store, tenant):
                sys.stdout.write(json.dumps(asdict(entry), sort_keys=True) + "\n")

    _with_store(export)
    return 0


_TENANT = name_type("tenant")
_POOL = name_type("pool")
_JSON = "print JSON instead of a table"


def add_admin_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="virtual API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key (printed once)")
    create.add_argument("--tenant", required=True, type=_TENANT, help="the tenant the key belongs to")
    create.add_argument("--name", type=label_type, help="a label for the key (shown by keys list)")
    create.add_argument("--models", type=models_type, help="comma-separated allow-list (globs: openai/*)")
    create.add_argument(
        "--pool", default="default", type=_POOL, help="the key's own pool (created unlimited if missing)"
    )
    create.add_argument(
        "--pools",
        type=names_type("pool"),
        default=(),
        help="comma-separated extra pools the key may also spend from",
    )
    create.add_argument(
        "--expires-in",
        type=count_type(1, MAX_EXPIRES_IN_SECONDS),
        metavar="SECONDS",
        help=f"expire the key after SECONDS (1..{MAX_EXPIRES_IN_SECONDS})",
    )
    add_key_budget_arguments(create)
    create.add_argument("--json", action="store_true", help=_JSON)
    create.set_defaults(handler=keys_create)
    listing = keys.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--tenant", type=_TENANT, help="only this tenant's keys")
    listing.add_argument("--json", action="store_true", help=_JSON)
    listing.set_defaults(handler=keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id", type=name_type("key_id"), help="the key's id (key_..., from keys list)")
    revoke.set_defaults(handler=keys_revoke)
    add_rotate_command(keys)

    budgets = commands.add_parser("budgets", help="token pools and USD budgets").add_subparsers(
        dest="action", required=True
    )
    set_ = budgets.add_parser("set", help="set a pool's token capacity and USD budget, or a key's USD budget")
    set_.add_argument("--tenant", required=True, type=_TENANT, help="the pool's (or key's) tenant")
    target = set_.add_mutually_exclusive_group()
    target.add_argument("--pool", default="default", type=_POOL, help="the pool (default: default)")
    target.add_argument("--key", type=name_type("key_id"), help="a key's own USD budget instead (key_...)")
    set_.add_argument(
        "--tokens",
        type=count_type(0, MAX_BUDGET_TOKENS),
        help=f"the pool's capacity in tokens (0..{MAX_BUDGET_TOKENS})",
    )
    add_budget_set_arguments(set_)
    set_.set_defaults(handler=budgets_set)
    show = budgets.add_parser("show", help="every budget: limit, spent, reserved, remaining, resets_at")
    show.add_argument("--tenant", type=_TENANT, help="only this tenant's budgets (default: every tenant)")
    show.add_argument("--json", action="store_true", help=_JSON)
    show.set_defaults(handler=budgets_show)
    sweeper = budgets.add_parser("sweep", help="charge and audit stale reservations, delete expired sessions")
    sweeper.add_argument(
        "--older-than",
        type=count_type(0, MAX_SWEEP_AGE_SECONDS),
        metavar="SECONDS",
        help="reservation age (default and minimum: TOLLGATE_RESERVATION_MAX_AGE_SECONDS; at most 100 years)",
    )
    sweeper.set_defaults(handler=sweep)

    audits = commands.add_parser("audit", help="the audit chain").add_subparsers(dest="action", required=True)
    verify = audits.add_parser("verify", help="verify the chain (exit 1 on the first bad entry)")
    verify.add_argument("--tenant", type=_TENANT, help="only this tenant's chain (default: every tenant)")
    verify.set_defaults(handler=audit_verify)
    export = audits.add_parser("export", help="entries as JSON Lines")
    export.add_argument("--tenant", type=_TENANT, help="only this tenant's entries (default: every tenant)")
    export.set_defaults(handler=audit_export)

    add_costs_command(commands)
