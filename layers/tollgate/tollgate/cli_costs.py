"""``tollgate costs``: totals from the cost rollups; ``--verify`` recomputes them from the audit entries."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import rollups
from .cli import _print, _with_store
from .cli_args import SINCE_FORMS, name_type, since_time
from .cli_checks import require_tenant
from .config import Settings
from .names import printable


def costs(args: argparse.Namespace) -> int:
    if args.repair and not args.verify:
        print("tollgate costs: --repair needs --verify", file=sys.stderr)
        return 2
    if args.verify:
        return _verify(args)
    since, until = args.since, args.until

    async def summary(store: Any, _: Settings) -> dict[str, Any]:
        if args.tenant:
            await require_tenant(store, args.tenant)  # a typo is exit 2, not a report of $0
        return await rollups.cost_report(store, args.tenant, since, until, args.by)

    result = {"tenant": args.tenant, "since": since, "until": until, **_with_store(summary)}
    if args.json:
        _print(result)
        return 0
    print(
        f"total ${result['total_cost_usd']:.6f} over {result['requests']} requests "
        f"({result['unpriced_requests']} unpriced, {result['refused']} refused)"
    )
    print(
        f"tokens: {result['prompt_tokens']} in ({result['cached_tokens']} cache reads, "
        f"{result['cache_write_tokens']} cache writes of which {result['cache_write_1h_tokens']} 1-hour), "
        f"{result['completion_tokens']} out ({result['reasoning_tokens']} reasoning)"
    )
    for row in result["groups"]:
        print(
            f"  {printable(row['group']):<48} {row['requests']:>7} req  {row['prompt_tokens']:>10} in "
            f"{row['completion_tokens']:>10} out  ${row['cost_usd']:.6f}"
        )
    return 0


def _verify(args: argparse.Namespace) -> int:
    """Exit 0 when the rollups equal the audit entries' sums, 1 when a row differs (each is printed)."""

    async def check(store: Any, _: Settings) -> dict[str, Any]:
        if args.tenant:
            await require_tenant(store, args.tenant)
        return await rollups.verify(store, args.tenant, args.since, args.until, repair=args.repair)

    result = _with_store(check)
    if args.json:
        _print(result)
    else:
        days = f"{result['since_day'] or 'start'} .. {result['until_day'] or 'now'}"
        if result["valid"]:
            print(f"cost rollups match the audit entries: {result['rows']} rows, days {days}")
        for diff in result["differences"]:
            cell = "/".join(printable(diff[k]) for k in ("tenant", "day", "key_id", "provider", "model"))
            audit, rollup = diff["audit"], diff["rollup"]
            changed = [f"{k} {rollup[k]} (audit {v})" for k, v in audit.items() if rollup[k] != v]
            print(f"DIFFERS {cell}: rollup " + ", ".join(changed))
        if result["repaired"]:
            print(f"repaired {len(result['differences'])} rows (the differences were added to the rollups)")
    return 0 if result["valid"] else 1


def add_costs_command(commands: Any) -> None:
    cost = commands.add_parser(
        "costs", help="cost totals and groups (from the cost rollups), or --verify them against the audit log"
    )
    cost.add_argument("--tenant", type=name_type("tenant"), help="only this tenant (default: every tenant)")
    cost.add_argument(
        "--since", type=since_time, help=f"from this UTC day on (rounded down to its day): {SINCE_FORMS}"
    )
    cost.add_argument(
        "--until", type=since_time, help="before this time (rounded up to the next UTC midnight)"
    )
    cost.add_argument(
        "--by",
        choices=["model", "day", "key", "tenant"],
        help="group the totals by model, UTC day, key or tenant",
    )
    cost.add_argument(
        "--verify",
        action="store_true",
        help="recompute the range from the audit entries and report every rollup row that differs (exit 1)",
    )
    cost.add_argument(
        "--repair",
        action="store_true",
        help="with --verify: add the differences to the rollups (backfills data written before rollups); "
        "use on past days, an entry written meanwhile may be counted on one side only",
    )
    cost.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cost.set_defaults(handler=costs)
