"""The per-tenant contention limit of the audit chain: ``tollgate.audit.append`` under concurrency.

    python bench/audit_contention.py            # SQLite and DynamoDB (dynalite), ~1-2 minutes
    python bench/audit_contention.py --stores sqlite --appends 100

One chain per tenant: an append reads the head (consistent), puts entry n+1 if that seq is free, then
advances the head. Concurrent writers on ONE tenant race for the same seq; each loser re-reads and retries
with jitter. This runs ``append`` at concurrency 1, 4, 16, 64 on one tenant, and the same spread over 16
tenants (writer i appends to tenant i mod 16: no contention up to 16 writers), and reports appends/s, mean
and p95 latency per append, lost races (``put_audit_entry`` returning False), appends that gave up
(``AuditConflict``) and whether every chain still verifies.

Stores: SQLite (a file in a temp dir) and DynamoDB on dynalite (``bash scripts/dynalite.sh install``),
started here on 127.0.0.1 only and stopped at the end. Both stores use 16 worker threads, as the gateway
does by default (``TOLLGATE_STORE_THREADS``). Each level is bounded by a count and a time limit. Writes
``bench/results/audit_contention.json``; the exit code is 0 whenever the benchmark ran.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tollgate import audit
from tollgate.store.base import AuditEntry, AuditHead, AuditStore, Store
from tollgate.timeutil import now_str

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
DYNALITE_CLI = BENCH_DIR.parent / ".tools" / "node_modules" / "dynalite" / "cli.js"
LEVELS = (1, 4, 16, 64)
SPREAD_TENANTS = 16
AUDIT_KEY = b"bench-audit-key"
REGION = "us-east-1"


# ------------------------------------------------------------------------------------ race counting


class RaceCounter:
    """An ``AuditStore`` that forwards to ``inner`` and counts lost races (a seq already taken)."""

    def __init__(self, inner: AuditStore) -> None:
        self.inner = inner
        self.lost = 0

    async def audit_head(self, tenant: str) -> AuditHead | None:
        return await self.inner.audit_head(tenant)

    async def put_audit_entry(self, entry: AuditEntry) -> bool:
        stored = await self.inner.put_audit_entry(entry)
        if not stored:
            self.lost += 1
        return stored

    async def advance_audit_head(self, tenant: str, head: AuditHead, previous_seq: int) -> bool:
        return await self.inner.advance_audit_head(tenant, head, previous_seq)

    async def get_audit_entry(self, tenant: str, seq: int) -> AuditEntry | None:
        return await self.inner.get_audit_entry(tenant, seq)

    async def list_audit(self, tenant: str, after_seq: int = 0, limit: int = 1000) -> list[AuditEntry]:
        return await self.inner.list_audit(tenant, after_seq, limit)

    async def audit_tenants(self) -> list[str]:
        return await self.inner.audit_tenants()


def new_entry(tenant: str) -> AuditEntry:
    return AuditEntry(
        tenant=tenant,
        seq=0,
        at=now_str(),
        request_id=uuid.uuid4().hex,
        key_id="key_bench",
        provider="openai",
        model="gpt-4o-mini",
        status="ok",
        prompt_tokens=11,
        completion_tokens=3,
        cost_micro_usd=3,
        request_sha256="0" * 64,
        response_sha256="1" * 64,
        prev_hash="",
        hash="",
    )


# ------------------------------------------------------------------------------------------ one level


@dataclass(frozen=True, slots=True)
class Level:
    mode: str  # "one tenant" or "16 tenants"
    concurrency: int
    tenants: list[str]

    def tenant_of(self, worker: int) -> str:
        return self.tenants[worker % len(self.tenants)]


@dataclass(slots=True)
class Tally:
    latencies: list[float] = field(default_factory=list)
    gave_up: int = 0
    claimed: int = 0


async def _worker(store: RaceCounter, tenant: str, tally: Tally, appends: int, deadline: float) -> None:
    while tally.claimed < appends and time.perf_counter() < deadline:
        tally.claimed += 1  # one event loop: claiming needs no lock
        started = time.perf_counter()
        try:
            await audit.append(store, new_entry(tenant), AUDIT_KEY)
        except audit.AuditConflict:
            tally.gave_up += 1
            continue
        tally.latencies.append(time.perf_counter() - started)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


async def run_level(store: RaceCounter, level: Level, appends: int, seconds: float) -> dict[str, Any]:
    tally, lost_before = Tally(), store.lost
    started = time.perf_counter()
    deadline = started + seconds
    async with asyncio.TaskGroup() as group:
        for worker in range(level.concurrency):
            group.create_task(_worker(store, level.tenant_of(worker), tally, appends, deadline))
    elapsed = time.perf_counter() - started
    done = len(tally.latencies)
    verified = [await audit.verify(store, tenant, AUDIT_KEY) for tenant in sorted(set(level.tenants))]
    return {
        "mode": level.mode,
        "concurrency": level.concurrency,
        "tenants": len(set(level.tenants)),
        "appends": done,
        "gave_up": tally.gave_up,
        "seconds": round(elapsed, 3),
        "appends_per_s": round(done / elapsed, 1) if elapsed else 0.0,
        "mean_ms": _ms(statistics.fmean(tally.latencies)) if done else None,
        "p95_ms": _ms(_p95(tally.latencies)) if done else None,
        "lost_races": store.lost - lost_before,
        "lost_races_per_append": round((store.lost - lost_before) / done, 2) if done else None,
        "chains_valid": all(v.valid for v in verified),
        "entries": sum(v.entries for v in verified),
        "time_limited": done + tally.gave_up < appends,
    }


def levels(run_id: str) -> list[Level]:
    spread = [f"spread-{run_id}-{n}" for n in range(SPREAD_TENANTS)]
    one = [Level("one tenant", c, [f"one-{run_id}-c{c}"]) for c in LEVELS]
    return one + [Level(f"{SPREAD_TENANTS} tenants", c, spread[: min(c, SPREAD_TENANTS)]) for c in LEVELS]


async def bench_store(name: str, store: Store, appends: int, seconds: float) -> list[dict[str, Any]]:
    counter = RaceCounter(store)
    run_id = uuid.uuid4().hex[:8]
    for _ in range(5):  # connections, threads, the client: not part of any level
        await audit.append(counter, new_entry(f"warm-{run_id}"), AUDIT_KEY)
    rows = []
    for level in levels(run_id):
        row = {"store": name, **await run_level(counter, level, appends, seconds)}
        print(render_row(row), flush=True)
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------- stores


@contextlib.asynccontextmanager
async def sqlite_store(workdir: Path) -> AsyncIterator[Store]:
    from tollgate.store.sqlite import SQLiteStore

    store = SQLiteStore(str(workdir / "audit.db"), threads=16)
    await store.init_schema()
    try:
        yield store
    finally:
        await store.aclose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


@contextlib.contextmanager
def dynalite(log_path: Path) -> Iterator[str]:
    """A dynalite process on 127.0.0.1 (in memory), stopped on the way out; yields its URL."""
    node = shutil.which("node")
    if node is None or not DYNALITE_CLI.is_file():
        raise RuntimeError(
            f"dynalite is not installed ({DYNALITE_CLI}): run `bash scripts/dynalite.sh install`"
        )
    port = _free_port()
    argv = [node, str(DYNALITE_CLI), "--host", "127.0.0.1", "--port", str(port), "--createTableMs", "0"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while not _listening(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dynalite did not start; see {log_path}")
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.asynccontextmanager
async def dynamodb_store(workdir: Path) -> AsyncIterator[Store]:
    from tollgate.store.dynamodb import DynamoDBStore

    logging.getLogger("tollgate.store.dynamodb").setLevel(logging.ERROR)  # dynalite has no TTL: expected
    with dynalite(workdir / "dynalite.log") as url:
        os.environ.update(
            AWS_ENDPOINT_URL_DYNAMODB=url,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_REGION=REGION,
            AWS_CONFIG_FILE=str(workdir / "absent"),
            AWS_SHARED_CREDENTIALS_FILE=str(workdir / "absent"),
        )
        store = DynamoDBStore(f"audit-bench-{uuid.uuid4().hex[:8]}", region=REGION, threads=16)
        await store.init_schema()
        try:
            yield store
        finally:
            await store.aclose()


STORES = {"sqlite": sqlite_store, "dynamodb": dynamodb_store}


# ------------------------------------------------------------------------------------------- output

HEADER = (
    f"{'store':<9}{'mode':<12}{'tenants':>8}{'writers':>8}{'appends':>8}{'appends/s':>10}{'mean ms':>9}"
    f"{'p95 ms':>9}{'lost races':>11}{'gave up':>8}  chain"
)


def render_row(row: dict[str, Any]) -> str:
    limited = " (time limit)" if row["time_limited"] else ""
    return (
        f"{row['store']:<9}{row['mode']:<12}{row['tenants']:>8}{row['concurrency']:>8}{row['appends']:>8}"
        f"{row['appends_per_s']:>10}{row['mean_ms'] or '-':>9}{row['p95_ms'] or '-':>9}"
        f"{row['lost_races']:>11}{row['gave_up']:>8}  {'ok' if row['chains_valid'] else 'BROKEN'}{limited}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stores", default="sqlite,dynamodb", help="comma-separated: sqlite, dynamodb")
    parser.add_argument("--appends", type=int, default=200, help="appends per level")
    parser.add_argument("--seconds", type=float, default=30.0, help="time limit per level")
    parser.add_argument("--out", type=Path, default=RESULTS / "audit_contention.json")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"appends_per_level": args.appends, "seconds_per_level": args.seconds}
    rows: list[dict[str, Any]] = []
    print(HEADER)
    for name in args.stores.split(","):
        async with STORES[name.strip()](workdir) as store:
            rows += await bench_store(name.strip(), store, args.appends, args.seconds)
    results["rows"] = rows
    results["environment"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tollgate-audit-bench-") as tmp:
        try:
            results = asyncio.run(run(args, Path(tmp)))
        except RuntimeError as exc:
            print(f"benchmark could not run: {exc}", file=sys.stderr)
            return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
