"""The SQLite store's per-request work alone, in process: CPU time per request.

    python bench/store_path.py                 # 4,000 requests, 16 concurrent clients
    python bench/store_path.py --requests 3000 --concurrency 1
    python bench/store_path.py --no-group      # without ``group_writes`` (one commit per write)

Each request does what the gateway's ledger does on SQLite: the reserve, then the settle, the cost rollup
and the audit link started side by side (``asyncio.gather``), grouped into one transaction unless
``--no-group``. One pass warms up, the second is measured (wall and process CPU time). Run two trees
alternately with ``PYTHONPATH=<tree>/layers/tollgate`` to compare them (``group_writes`` is skipped where
the tree has none).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import uvloop

from tollgate import rollups
from tollgate.audit import AuditWriter
from tollgate.store.audit_base import AuditEntry
from tollgate.store.sqlite import SQLiteStore

try:
    from tollgate.store.sqlite_group import group_writes
except ImportError:  # a tree from before the grouping
    group_writes = None  # type: ignore[assignment]

AT = "2026-11-26T10:00:00.000000Z"


def entry(i: int) -> AuditEntry:
    return AuditEntry(
        tenant="t",
        seq=0,
        at=AT,
        request_id=f"r{i}",
        key_id="k",
        provider="p",
        model="m",
        status="ok",
        prompt_tokens=10,
        completion_tokens=5,
        cost_micro_usd=12,
        request_sha256="a" * 64,
        response_sha256="b" * 64,
        prev_hash="",
        hash="",
    )


async def measure(requests: int, concurrency: int, group: bool) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(str(Path(tmp) / "store.db"))
        await store.init_schema()
        await store.create_pool("t", "p")
        await store.set_capacity("t", "p", 10**15)
        writer = AuditWriter(store, b"k" * 32)

        async def one(i: int) -> None:
            await store.reserve("t", "p", f"r{i}", 100, AT, totals_only=True)
            await asyncio.sleep(0)  # the upstream call
            done = entry(i)
            jobs = asyncio.gather(
                writer.append(done),
                store.add_rollup(rollups.change_of(done)),
                store.settle("t", "p", f"r{i}", 15, reserved=100, totals_only=True),
                return_exceptions=True,
            )
            if group and group_writes is not None:
                group_writes(store)
            failed = [r for r in await jobs if isinstance(r, BaseException)]
            assert not failed, failed

        async def client(first: int) -> None:
            for i in range(first, requests, concurrency):
                await one(i)

        try:
            await asyncio.gather(*(client(c) for c in range(concurrency)))  # warm-up
            wall, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(client(c) for c in range(concurrency)))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            await store.aclose()
    return wall / requests * 1e6, cpu / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--no-group", action="store_true", help="one transaction per write")
    args = parser.parse_args()
    wall, cpu = uvloop.run(measure(args.requests, args.concurrency, not args.no_group))
    print(
        f"{args.requests} requests at c={args.concurrency}: wall {wall:.1f} µs, CPU {cpu:.1f} µs per request"
    )


if __name__ == "__main__":
    main()
