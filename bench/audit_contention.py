"""Audit appends under concurrency: the single chain per tenant (before) vs per-writer segments (after).

    python bench/audit_contention.py            # SQLite and DynamoDB (dynalite), a few minutes
    python bench/audit_contention.py --stores dynamodb --levels 1,4,16 --appends 200 --seconds 20

Writers are OS processes (the way Lambda execution environments and ``tollgate serve`` workers run), each
appending one entry at a time (a Lambda environment serves one request at a time), all started together:

- **chain** (before): ``tollgate.audit.append`` on the tenant's one chain, remembering its own last head
  (the old ``AuditWriter``): writers on one tenant race for the same seq; a loser re-reads and retries.
- **segments** (after): ``tollgate.audit.AuditWriter``: each writer appends to a segment of its own,
  opened once (head + registry entry), then one conditional put and one head update per append, no read.

Each level runs N writers on one tenant, then N writers on N tenants, with a fixed number of appends in all
and a time limit. Per level: appends/s, mean and p95 latency of one append (the segment's opening
included), lost races (a conditional put that found its seq taken), appends that gave up (``AuditConflict``)
and whether the tenants' logs verify with the expected entry count.

Stores: SQLite (a file in a temp dir) and DynamoDB on dynalite (``bash scripts/dynalite.sh install``),
started here on 127.0.0.1 only and stopped at the end. Writes ``bench/results/audit_contention.json``; the
exit code is 0 whenever the benchmark ran.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tollgate import audit
from tollgate.store.audit_base import AuditEntry, AuditHead
from tollgate.store.base import Store
from tollgate.timeutil import now_str

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
DYNALITE_CLI = BENCH_DIR.parent / ".tools" / "node_modules" / "dynalite" / "cli.js"
DYNALITE_SERVER = BENCH_DIR.parent / "scripts" / "dynalite-server.js"  # survives a client gone mid-request
AUDIT_KEY = b"bench-audit-key"
REGION = "us-east-1"


# ------------------------------------------------------------------------------------------ a writer


class RaceCounter:
    """Forwards to the store and counts lost races (``put_audit_entry`` finding its seq taken)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.lost = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def put_audit_entry(self, entry: AuditEntry) -> bool:
        stored: bool = await self.inner.put_audit_entry(entry)
        self.lost += not stored
        return stored

    async def append_audit_link(self, link: AuditEntry, previous_seq: int) -> tuple[bool, bool]:
        written, advanced = await self.inner.append_audit_link(link, previous_seq)
        self.lost += not written
        return written, advanced


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


class ChainWriter:
    """The writer before segments: the tenant's one chain, its own last head remembered."""

    def __init__(self, store: Any) -> None:
        self.store, self.head = store, None

    async def append(self, entry: AuditEntry) -> AuditEntry:
        link = await audit.append(self.store, entry, AUDIT_KEY, known_head=self.head)
        self.head = AuditHead(link.seq, link.hash)
        return link


async def _write(
    spec: str, mode: str, tenant: str, appends: int, seconds: float, barrier: Any
) -> dict[str, Any]:
    """One writer process: ``appends`` appends one after another (or until the time limit)."""
    store = open_store(spec)
    await store.audit_head(f"warm-up-{tenant}")  # the client and a connection: not part of the run
    barrier.wait(timeout=120)
    try:
        return await _appends(store, mode, tenant, appends, seconds)
    finally:
        await store.aclose()


async def _appends(store: Store, mode: str, tenant: str, appends: int, seconds: float) -> dict[str, Any]:
    """One writer's appends, one after another (or until the time limit)."""
    counter = RaceCounter(store)
    writer = ChainWriter(counter) if mode == "chain" else audit.AuditWriter(counter, AUDIT_KEY)  # type: ignore[arg-type]
    latencies, gave_up = [], 0
    deadline = time.perf_counter() + seconds
    while len(latencies) + gave_up < appends and time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            await writer.append(new_entry(tenant))
        except audit.AuditConflict:
            gave_up += 1
            continue
        latencies.append(time.perf_counter() - started)
    return {"latencies": latencies, "gave_up": gave_up, "lost": counter.lost}


async def _run_tasks(
    store: Store, level: Level, appends: int, seconds: float
) -> tuple[list[dict[str, Any]], float]:
    """Writers as tasks of this process, each with a writer of its own (as separate processes would have):
    I/O-bound like Lambda environments, without a process per writer on a small machine."""
    each = max(1, appends // level.writers)
    tenants = [level.tenants[n % len(level.tenants)] for n in range(level.writers)]
    started = time.perf_counter()
    reports = await asyncio.gather(*(_appends(store, level.mode, t, each, seconds) for t in tenants))
    return list(reports), time.perf_counter() - started


def writer_process(
    spec: str, mode: str, tenant: str, appends: int, seconds: float, barrier: Any, out: Any
) -> None:
    try:
        out.put(asyncio.run(_write(spec, mode, tenant, appends, seconds, barrier)))
    except BaseException as exc:  # reported, never hung on
        out.put({"error": repr(exc)})


# ------------------------------------------------------------------------------------------ one level


@dataclass(frozen=True, slots=True)
class Level:
    mode: str  # "chain" or "segments"
    spread: str  # "one tenant" or "N tenants"
    writers: int
    tenants: list[str]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def _run_processes(
    spec: str, level: Level, appends: int, seconds: float
) -> tuple[list[dict[str, Any]], float]:
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(level.writers + 1), ctx.Queue()
    each = max(1, appends // level.writers)
    processes = [
        ctx.Process(
            target=writer_process,
            args=(spec, level.mode, level.tenants[n % len(level.tenants)], each, seconds, barrier, out),
            daemon=True,
        )
        for n in range(level.writers)
    ]
    for process in processes:
        process.start()
    try:
        barrier.wait(timeout=120)  # every writer imported and ready: the clock starts
        started = time.perf_counter()
        reports = [out.get(timeout=seconds + 120) for _ in processes]
        elapsed = time.perf_counter() - started
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    return reports, elapsed


async def run_level(spec: str, store: Store, level: Level, args: argparse.Namespace) -> dict[str, Any]:
    appends, seconds = args.appends, args.seconds
    if args.writers_as == "processes":
        reports, elapsed = await asyncio.to_thread(_run_processes, spec, level, appends, seconds)
    else:
        reports, elapsed = await _run_tasks(store, level, appends, seconds)
    errors = [r["error"] for r in reports if "error" in r]
    if errors:
        raise RuntimeError(f"a writer failed: {errors[0]}")
    latencies = [x for r in reports for x in r["latencies"]]
    firsts = [r["latencies"][0] for r in reports if r["latencies"]]  # a segment's opening included
    steady = [x for r in reports for x in r["latencies"][1:]]
    done, lost = len(latencies), sum(r["lost"] for r in reports)
    verified = [await audit.verify(store, tenant, AUDIT_KEY) for tenant in sorted(set(level.tenants))]
    return {
        "mode": level.mode,
        "spread": level.spread,
        "writers": level.writers,
        "tenants": len(set(level.tenants)),
        "appends": done,
        "gave_up": sum(r["gave_up"] for r in reports),
        "seconds": round(elapsed, 3),
        "appends_per_s": round(done / elapsed, 1) if elapsed else 0.0,
        "mean_ms": _ms(statistics.fmean(latencies)) if done else None,
        "p95_ms": _ms(_p95(latencies)) if done else None,
        "first_append_p95_ms": _ms(_p95(firsts)) if firsts else None,
        "later_appends_p95_ms": _ms(_p95(steady)) if steady else None,
        "lost_races": lost,
        "logs_valid": all(v.valid for v in verified),
        "entries_verified": sum(v.entries for v in verified),
    }


def levels(run_id: str, writers: list[int], modes: list[str]) -> list[Level]:
    found = []
    for mode in modes:
        for n in writers:
            found.append(Level(mode, "one tenant", n, [f"one-{run_id}-{mode}-{n}"]))
            if n > 1:
                found.append(
                    Level(mode, "N tenants", n, [f"spread-{run_id}-{mode}-{n}-{t}" for t in range(n)])
                )
    return found


async def bench_store(name: str, spec: str, store: Store, args: argparse.Namespace) -> list[dict[str, Any]]:
    run_id = uuid.uuid4().hex[:8]
    rows = []
    for level in levels(run_id, args.writers, args.modes):
        row = {"store": name, "writers_as": args.writers_as, **await run_level(spec, store, level, args)}
        print(render_row(row), flush=True)
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------- stores


def open_store(spec: str) -> Store:
    """``sqlite:<path>`` or ``dynamodb:<table>`` (the endpoint from the environment, as boto3 reads it)."""
    kind, _, where = spec.partition(":")
    if kind == "sqlite":
        from tollgate.store.sqlite import SQLiteStore

        return SQLiteStore(where, threads=4)
    from tollgate.store.dynamodb import DynamoDBStore

    return DynamoDBStore(where, region=REGION, threads=4)


@contextlib.asynccontextmanager
async def sqlite_store(workdir: Path) -> AsyncIterator[tuple[str, Store]]:
    spec = f"sqlite:{workdir / 'audit.db'}"
    store = open_store(spec)
    await store.init_schema()
    try:
        yield spec, store
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
    argv = [node, str(DYNALITE_SERVER), "--host", "127.0.0.1", "--port", str(port), "--createTableMs", "0"]
    with serving("dynalite", argv, port, log_path, timeout=20) as url:
        yield url


@contextlib.contextmanager
def serving(name: str, argv: list[str], port: int, log_path: Path, *, timeout: float) -> Iterator[str]:
    """Run ``argv`` (a server listening on 127.0.0.1:``port``), logging to ``log_path``; yields its URL once
    it accepts connections and stops it on the way out."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not _listening(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start; see {log_path}")
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def point_at(url: str, workdir: Path) -> None:
    """Send this process's DynamoDB calls (and the gateways it starts) to the emulator at ``url``."""
    os.environ.update(
        AWS_ENDPOINT_URL_DYNAMODB=url,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION=REGION,
        AWS_CONFIG_FILE=str(workdir / "absent"),
        AWS_SHARED_CREDENTIALS_FILE=str(workdir / "absent"),
    )


@contextlib.asynccontextmanager
async def dynamodb_store(workdir: Path) -> AsyncIterator[tuple[str, Store]]:
    logging.getLogger("tollgate.store.dynamodb").setLevel(logging.ERROR)  # dynalite has no TTL: expected
    with dynalite(workdir / "dynalite.log") as url:
        point_at(url, workdir)
        spec = f"dynamodb:audit-bench-{uuid.uuid4().hex[:8]}"
        store = open_store(spec)
        await store.init_schema()
        try:
            yield spec, store
        finally:
            await store.aclose()


STORES = {"sqlite": sqlite_store, "dynamodb": dynamodb_store}


# ------------------------------------------------------------------------------------------- output

HEADER = (
    f"{'store':<9}{'mode':<10}{'spread':<12}{'writers':>8}{'appends':>8}{'appends/s':>10}{'mean ms':>9}"
    f"{'p95 ms':>9}{'1st p95':>9}{'rest p95':>9}{'lost races':>11}{'gave up':>8}  log"
)


def render_row(row: dict[str, Any]) -> str:
    valid = "ok" if row["logs_valid"] and row["entries_verified"] >= row["appends"] else "BROKEN"
    return (
        f"{row['store']:<9}{row['mode']:<10}{row['spread']:<12}{row['writers']:>8}{row['appends']:>8}"
        f"{row['appends_per_s']:>10}{row['mean_ms'] or '-':>9}{row['p95_ms'] or '-':>9}"
        f"{row['first_append_p95_ms'] or '-':>9}{row['later_appends_p95_ms'] or '-':>9}"
        f"{row['lost_races']:>11}{row['gave_up']:>8}  {valid}"
    )


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stores", default="sqlite,dynamodb", help="comma-separated: sqlite, dynamodb")
    parser.add_argument(
        "--modes", default="chain,segments", type=lambda t: t.split(","), help="chain, segments"
    )
    parser.add_argument(
        "--levels", dest="writers", default=[1, 4, 16, 64], type=_ints, help="writer processes"
    )
    parser.add_argument(
        "--writers-as", choices=("tasks", "processes"), default="tasks", help="writers as tasks or processes"
    )
    parser.add_argument("--appends", type=int, default=200, help="appends per level, in all")
    parser.add_argument("--seconds", type=float, default=20.0, help="time limit per level")
    parser.add_argument("--out", type=Path, default=RESULTS / "audit_contention.json")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"appends_per_level": args.appends, "seconds_per_level": args.seconds}
    rows: list[dict[str, Any]] = []
    print(HEADER)
    for name in args.stores.split(","):
        async with STORES[name.strip()](workdir) as (spec, store):
            rows += await bench_store(name.strip(), spec, store, args)
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
