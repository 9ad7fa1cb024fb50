"""``tollgate limits set | show | clear``: per-tenant and per-key rate limits from the command line.

Bad numbers are refused by argparse; an unknown tenant or key id is one line on stderr and exit 2, and
nothing is written (``tollgate.limits_admin``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import limits_admin
from .cli import _print, _with_store
from .cli_args import count_type, name_type
from .cli_checks import require_tenant
from .config import Settings
from .errors import NotFound
from .names import printable
from .store.limits_base import RateLimit

_RATE = count_type(1, limits_admin.MAX_RATE)


def _run(work: Any) -> Any:
    try:
        return _with_store(work)
    except NotFound as exc:
        print(f"tollgate: {printable(exc.message)}", file=sys.stderr)
        return None


def limits_set(args: argparse.Namespace) -> int:
    if args.rpm is None and args.tpm is None:
        print("tollgate limits set: error: give --rpm, --tpm or both", file=sys.stderr)
        return 2
    limit = RateLimit(args.tenant, args.key, args.rpm, args.tpm)

    async def set_(store: Any, _: Settings) -> dict[str, Any]:
        return limits_admin.limit_view(await limits_admin.set_limit(store, limit))

    view = _run(set_)
    if view is None:
        return 2
    _print(view)
    return 0


def limits_show(args: argparse.Namespace) -> int:
    async def show(store: Any, _: Settings) -> list[dict[str, Any]]:
        if args.tenant:
            await require_tenant(store, args.tenant)
        return [limits_admin.limit_view(lim) for lim in await store.list_limits(args.tenant)]

    rows = _with_store(show)
    if args.json:
        _print(rows)
        return 0
    print(f"{'tenant':<16} {'scope':<24} {'rpm':>12} {'tpm':>14}")
    for row in rows:
        scope = f"key {row['key_id']}" if row["key_id"] else "tenant"
        rpm = "-" if row["rpm"] is None else row["rpm"]
        tpm = "-" if row["tpm"] is None else row["tpm"]
        print(f"{printable(row['tenant']):<16} {printable(scope):<24} {rpm:>12} {tpm:>14}")
    return 0


def limits_clear(args: argparse.Namespace) -> int:
    async def clear(store: Any, _: Settings) -> bool:
        await limits_admin.clear_limit(store, args.tenant, args.key)
        return True

    if _run(clear) is None:
        return 2
    print(f"cleared the rate limit of {'key ' + args.key if args.key else 'tenant ' + args.tenant}")
    return 0


def add_limit_commands(commands: Any) -> None:
    tenant, key = name_type("tenant"), name_type("key_id")
    limits = commands.add_parser("limits", help="rate limits (requests and tokens per minute)")
    actions = limits.add_subparsers(dest="action", required=True)
    set_ = actions.add_parser("set", help="set a tenant's or a key's limits (replaces them)")
    set_.add_argument("--tenant", required=True, type=tenant, help="the tenant")
    set_.add_argument("--key", type=key, metavar="KEY_ID", help="one key of the tenant (default: the tenant)")
    set_.add_argument("--rpm", type=_RATE, help="requests per minute (1..1e9)")
    set_.add_argument("--tpm", type=_RATE, help="tokens per minute (1..1e9)")
    set_.set_defaults(handler=limits_set)
    show = actions.add_parser("show", help="every limit (or one tenant's)")
    show.add_argument("--tenant", type=tenant, help="only this tenant's limits")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show.set_defaults(handler=limits_show)
    clear = actions.add_parser("clear", help="remove a tenant's or a key's limits")
    clear.add_argument("--tenant", required=True, type=tenant, help="the tenant")
    clear.add_argument(
        "--key", type=key, metavar="KEY_ID", help="one key of the tenant (default: the tenant)"
    )
    clear.set_defaults(handler=limits_clear)
