"""Throughput under many processes (issue 11 part 4): N gateway processes on one store, one tenant vs N.

    python bench/scale.py                                   # dynalite and SQLite, N = 1, 2, 4, 8
    python bench/scale.py --stores dynamodb --levels 1,8 --seconds 10 --concurrency 4
    python bench/scale.py --stores dynamodb --emulator moto --levels 8   # moto's server instead of dynalite

Per store and N: a fresh DynamoDB table on dynalite (or a fresh SQLite file), the stub upstream, and N
gateway processes, each the chat Lambda's entry (``uvicorn --factory tollgate.app:create_app``, one worker:
N Lambda instances). Two closed loops run side by side in the same time window, through every gateway:
**one tenant** (one key, ``--concurrency`` connections per gateway) and **N tenants** (gateway i with the
key of tenant i, as many connections): so the machine's noise hits both alike. Per load: requests/s, p50
and p95 of the whole request (the stub answers in ~0.1 ms, so this is the gateway's added latency), after a
warm-up of ``--warmup`` requests per gateway and key (segments opened, caches filled); and after the gateways
stopped: audit entries written vs requests answered (the warm-up's included), ``tollgate audit verify``'s
result (every tenant), and the cost rollups vs the sum of the audit entries (``rollups.verify``).

Then one tenant alone at a fixed modest rate (``--rate`` req/s in all, open loop spread over the
gateways): its p95 at N=8 against N=1 is the issue's third target.

Keys are created in the store directly; every request reserves, settles, audits and rolls up as in
production. Writes ``bench/results/scale.json``; exit 0 whenever the benchmark ran.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpload
import servers
from audit_contention import REGION, dynalite, point_at
from item_contention import moto
from tollgate import audit, rollups
from tollgate.keys import new_key_record, store_key
from tollgate.store.base import Store
from tollgate.store.dynamodb import DynamoDBStore
from tollgate.store.sqlite import SQLiteStore

RESULTS = servers.BENCH_DIR / "results"
AUDIT_KEY = "bench-scale-audit-key"
CHAT: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say hello in a few words."}],
    "max_tokens": 16,
}


def open_store(kind: str, where: str) -> Store:
    return SQLiteStore(where) if kind == "sqlite" else DynamoDBStore(where, region=REGION)


def store_env(kind: str, where: str) -> dict[str, str]:
    if kind == "sqlite":
        return {"TOLLGATE_SQLITE_PATH": where}
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    return {**aws, "TOLLGATE_STORE": "dynamodb", "TOLLGATE_TABLE": where}


async def provision(kind: str, where: str, tenants: list[str]) -> list[str]:
    """A fresh store with one key per tenant (its pool created unlimited: reserve is still a write)."""
    store = open_store(kind, where)
    try:
        await store.init_schema()
        keys = []
        for tenant in tenants:
            key, record = new_key_record(tenant)
            await store_key(store, record)
            keys.append(key)
        return keys
    finally:
        await store.aclose()


@contextlib.contextmanager
def gateways(count: int, env: dict[str, str], workdir: Path) -> Iterator[list[servers.Server]]:
    started: list[servers.Server] = []
    try:
        for n in range(count):
            port = servers.free_port()
            argv = servers.gateway_argv(port, "tollgate.app:create_app", None)
            started.append(servers.Server(f"gateway{n}", argv, env, workdir / f"gateway{n}.log", port))
        for server in started:
            server.wait_ready("/health", timeout=120)
        yield started
    finally:
        for server in started:
            server.stop()


async def load(pairs: list[tuple[httpload.Target, str]], concurrency: int, seconds: float) -> dict[str, Any]:
    """Closed loops on every (gateway, key) pair at once; merged samples."""
    runs = await asyncio.gather(
        *(
            httpload.closed_loop(target, httpload.encode_post(target, CHAT, key), concurrency, seconds)
            for target, key in pairs
        )
    )
    total = [t for samples, _ in runs for t in samples.total]
    elapsed = max(e for _, e in runs)
    errors = sum(s.errors for s, _ in runs)
    return {
        "answered": len(total),
        "errors": errors,
        "last_error": next((s.last_error for s, _ in runs if s.last_error), ""),
        "rps": round(len(total) / elapsed, 1),
        "p50_ms": round(httpload.percentile(total, 50) * 1000, 2),
        "p95_ms": round(httpload.percentile(total, 95) * 1000, 2),
    }


def send_times(pairs: int, rate: float, seconds: float, *, bursts: bool = False) -> list[list[float]]:
    """When each pair sends (seconds from the start) for ``rate`` requests/s in all over ``seconds``.

    Request j goes to pair ``j % pairs`` at ``j / rate`` s: each pair sends every ``pairs / rate`` s, pair i
    starting ``i / rate`` s after pair 0, so the requests arrive one every ``1 / rate`` s whatever the
    number of pairs. ``bursts`` starts every pair at 0 (this bench before 2026-11-26 19:30 UTC): bursts of
    ``pairs`` requests at once, whose queueing on the CPUs grows with the number of gateways (measured:
    SQLite, 20 req/s, N=8, p50 14 ms in bursts vs 3 ms staggered; docs/scale.md)."""
    total = max(pairs, int(rate * seconds))
    return [[(j - i if bursts else j) / rate for j in range(i, total, pairs)] for i in range(pairs)]


async def _paced(target: httpload.Target, raw: bytes, times: list[float]) -> httpload.Samples:
    """Open loop: one request at each of ``times`` (seconds from now), each on an idle keep-alive
    connection (a new one when all are busy), whatever the answers' latency."""
    samples, idle = httpload.Samples(), list[httpload.Connection]()
    opened: list[httpload.Connection] = []

    async def one() -> None:
        conn = idle.pop() if idle else await httpload.Connection.open(target)
        if conn not in opened:
            opened.append(conn)
        samples.add(await conn.send(raw))
        idle.append(conn)

    tasks, start = [], time.perf_counter()
    for at in times:
        await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    for conn in opened:
        await conn.close()
    return samples


async def fixed_rate(
    pairs: list[tuple[httpload.Target, str]], rate: float, seconds: float, *, bursts: bool = False
) -> dict[str, Any]:
    """``rate`` requests/s in all, spread evenly over the pairs and in time (``send_times``); latency
    percentiles."""
    schedule = send_times(len(pairs), rate, seconds, bursts=bursts)
    runs = await asyncio.gather(
        *(_paced(t, httpload.encode_post(t, CHAT, k), at) for (t, k), at in zip(pairs, schedule, strict=True))
    )
    total = [t for samples in runs for t in samples.total]
    return {
        "rate": rate,
        "answered": len(total),
        "errors": sum(s.errors for s in runs),
        "p50_ms": round(httpload.percentile(total, 50) * 1000, 2),
        "p95_ms": round(httpload.percentile(total, 95) * 1000, 2),
    }


async def checked(kind: str, where: str, tenants: list[str]) -> dict[str, Any]:
    """Audit entries and verification per tenant, and the rollups against the audit sum."""
    store = open_store(kind, where)
    try:
        entries, valid, unconfirmed, rollup_ok, rolled = 0, True, 0, True, 0
        for tenant in tenants:
            result = await audit.verify(store, tenant, AUDIT_KEY.encode())
            entries += result.entries
            valid &= result.valid
            unconfirmed += result.unconfirmed_tail
            costs = await rollups.verify(store, tenant, None, None)
            rollup_ok &= costs["valid"]
            rolled += (await rollups.cost_report(store, tenant, None, None, None))["requests"]
        return {
            "entries": entries,
            "verify": "valid" if valid else "BROKEN",
            "unconfirmed_tails": unconfirmed,
            "rollups_equal_audit": rollup_ok,
            "rollup_requests": rolled,
        }
    finally:
        await store.aclose()


def run_level(kind: str, n: int, args: argparse.Namespace, workdir: Path, stub_port: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    where = str(workdir / f"scale-{n}-{run}.db") if kind == "sqlite" else f"scale-{n}-{run}"
    one, spread = f"one-{run}", [f"t{i}-{run}" for i in range(n)]
    keys = asyncio.run(provision(kind, where, [one, *spread]))
    env = servers.gateway_env(stub_port, workdir, "WARNING")
    env.update(store_env(kind, where), TOLLGATE_AUDIT_KEY=AUDIT_KEY)
    with gateways(n, env, workdir) as running:
        targets = [httpload.Target(s.name, servers.HOST, s.port) for s in running]
        one_pairs = [(t, keys[0]) for t in targets]
        spread_pairs = [(t, keys[1 + i]) for i, t in enumerate(targets)]

        async def side_by_side() -> list[dict[str, Any]]:
            warm = [
                httpload.sequential(t, httpload.encode_post(t, CHAT, k), args.warmup)
                for t, k in one_pairs + spread_pairs
            ]
            warmed = await asyncio.gather(*warm)  # key caches, clients, each segment opened
            assert all(w.errors == 0 for w in warmed), [w.last_error for w in warmed if w.errors]
            return list(
                await asyncio.gather(
                    load(one_pairs, args.concurrency, args.seconds),
                    load(spread_pairs, args.concurrency, args.seconds),
                )
            )

        one_load, spread_load = asyncio.run(side_by_side())
        paced = asyncio.run(fixed_rate(one_pairs, args.rate, args.seconds)) if args.rate else None
    if paced is not None:
        one_load["answered"] += paced["answered"]
    one_load["answered"] += args.warmup * n  # the warm-up's answers have entries too
    spread_load["answered"] += args.warmup * n
    one_load.update(asyncio.run(checked(kind, where, [one])))
    spread_load.update(asyncio.run(checked(kind, where, spread)))
    return {
        "store": kind,
        "gateways": n,
        "one_tenant": one_load,
        "n_tenants": spread_load,
        "fixed_rate_one_tenant": paced,
        "rps_ratio": round(one_load["rps"] / spread_load["rps"], 3) if spread_load["rps"] else None,
        "p95_ratio": round(one_load["p95_ms"] / spread_load["p95_ms"], 3) if spread_load["p95_ms"] else None,
    }


HEADER = (
    f"{'store':<9}{'N':>3}  {'load':<10}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'answered':>9}{'entries':>8}"
    f"{'errors':>7}  {'verify':<7}{'rollups=audit':>14}"
)


def render(row: dict[str, Any]) -> list[str]:
    lines = []
    for name, label in (("one_tenant", "1 tenant"), ("n_tenants", "N tenants")):
        part = row[name]
        lines.append(
            f"{row['store']:<9}{row['gateways']:>3}  {label:<10}{part['rps']:>8}{part['p50_ms']:>9}"
            f"{part['p95_ms']:>9}{part['answered']:>9}{part['entries']:>8}{part['errors']:>7}  "
            f"{part['verify']:<7}{part['rollups_equal_audit']!s:>14}"
        )
    lines.append(f"{'':<14}1-tenant / N-tenant: req/s x{row['rps_ratio']}, p95 x{row['p95_ratio']}")
    if paced := row["fixed_rate_one_tenant"]:
        lines.append(
            f"{'':<14}1 tenant at a fixed {paced['rate']} req/s: p50 {paced['p50_ms']} ms, "
            f"p95 {paced['p95_ms']} ms ({paced['answered']} answered, {paced['errors']} errors)"
        )
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stores", default="dynamodb,sqlite", help="comma-separated: dynamodb, sqlite")
    parser.add_argument("--levels", default="1,2,4,8", help="numbers of gateway processes")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each side-by-side load")
    parser.add_argument("--concurrency", type=int, default=2, help="connections per gateway and load")
    parser.add_argument(
        "--rate", type=float, default=20.0, help="then one tenant at this fixed rate (req/s in all; 0: skip)"
    )
    parser.add_argument(
        "--emulator", choices=("dynalite", "moto"), default="dynalite", help="the DynamoDB server to run"
    )
    parser.add_argument("--warmup", type=int, default=5, help="requests per gateway and key before timing")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("tollgate.store.dynamodb").setLevel(logging.ERROR)  # dynalite has no TTL: expected
    levels = [int(n) for n in args.levels.split(",") if n.strip()]
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    print(HEADER)
    with tempfile.TemporaryDirectory(prefix="tollgate-scale-") as tmp:
        workdir = Path(tmp)
        stub_port = servers.free_port()
        stub = servers.Server(
            "stub", servers.stub_argv(stub_port), dict(os.environ), workdir / "stub.log", stub_port
        )
        with servers.running(stub, "/health"), contextlib.ExitStack() as stack:
            for kind in stores:
                if kind == "dynamodb":
                    emulator = moto if args.emulator == "moto" else dynalite
                    point_at(stack.enter_context(emulator(workdir / f"{args.emulator}.log")), workdir)
                for n in levels:
                    row = run_level(kind, n, args, workdir, stub_port)
                    rows.append(row)
                    print("\n".join(render(row)), flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = {"args": vars(args), "seconds_total": round(time.monotonic() - started, 1), "rows": rows}
    (RESULTS / "scale.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"total {out['seconds_total']} s; wrote {RESULTS / 'scale.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
