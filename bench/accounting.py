"""What the accounting path costs per request on SQLite: the gateway on its real store vs on a no-op store.

    python bench/accounting.py            # ~1 minute
    python bench/accounting.py --quick    # ~20 s

One stub upstream and two gateways (the chat entry, ``python -m uvicorn --factory ...``, one worker each):

- **sqlite**: ``tollgate.app:create_app`` on a SQLite file in a temp dir, with a key made by
  ``tollgate keys create --json`` and a budget set by ``tollgate budgets set``, so every request really
  reserves, settles and appends to the audit chain (one tenant, one pool);
- **null**: ``null_store:create_app``, the same app on ``bench/null_store.py`` (every store call returns at
  once). Pricing, hashing and the ledger's logic still run there: the difference is the store's work.

Concurrency 1 (non-streamed and streamed) in interleaved rounds (direct, sqlite, null, direct, ...), then
a short c=16 throughput run per gateway. Reports added ms vs direct for both gateways and their
difference (the accounting path), against the data plane's target (p50 added <= 1 ms). Writes
``bench/results/accounting.json``; the exit code is 0 whenever the benchmark ran.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpload
import servers
from overhead import BENCH_TENANT, CHAT, STREAM_CHAT, arun, check, ms, provision_key, tollgate_cli, with_cpu

RESULTS = servers.BENCH_DIR / "results"
FACTORIES = {"sqlite": "tollgate.app:create_app", "null": "null_store:create_app"}
TARGET_P50_ADDED_MS = 1.0
Phase = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Plan:
    warmup: int
    requests: int  # per target and phase, over all rounds
    rounds: int
    concurrency: int
    throughput_s: float


FULL = Plan(200, 2400, 6, 16, 5.0)
QUICK = Plan(50, 600, 3, 16, 2.0)


@dataclass(frozen=True, slots=True)
class Stack:
    targets: dict[str, httpload.Target]  # direct, sqlite, null
    procs: dict[str, servers.Server]  # stub, sqlite, null
    api_key: str
    env: dict[str, str]  # the sqlite gateway's (for the CLI)

    def behind(self, name: str) -> dict[str, servers.Server]:
        return {name: self.procs["stub" if name == "direct" else name]}


def gateway_env(stub_port: int, state: Path, log_level: str) -> dict[str, str]:
    return servers.with_bench_on_path(servers.gateway_env(stub_port, state, log_level))


@contextlib.contextmanager
def running_stack(state: Path, log_level: str) -> Iterator[Stack]:
    with contextlib.ExitStack() as stack:
        port = servers.free_port()
        stub = servers.Server("stub", servers.stub_argv(port), dict(os.environ), RESULTS / "stub.log", port)
        procs = {"stub": stack.enter_context(servers.running(stub, "/health"))}
        targets = {"direct": httpload.Target("direct", servers.HOST, port)}
        env = gateway_env(port, state, log_level)
        api_key = provision_key(env)
        for name, factory in FACTORIES.items():
            gw_port = servers.free_port()
            argv = servers.gateway_argv(gw_port, factory, None)
            log = RESULTS / f"accounting-{name}.log"
            server = servers.Server(name, argv, env, log, gw_port)
            procs[name] = stack.enter_context(servers.running(server, "/health"))
            targets[name] = httpload.Target(name, servers.HOST, gw_port)
        yield Stack(targets, procs, api_key, env)


# ------------------------------------------------------------------------------------------- phases


def _sequential(target: httpload.Target, raw: bytes, count: int) -> httpload.Samples:
    return arun(httpload.sequential(target, raw, count))


def warm_up(stack: Stack, plan: Plan) -> None:
    for target in stack.targets.values():
        for payload in (CHAT, STREAM_CHAT):
            raw = httpload.encode_post(target, payload, stack.api_key)
            check(_sequential(target, raw, plan.warmup), f"warm-up {target.name}")


def latency_phase(stack: Stack, plan: Plan, payload: dict[str, Any]) -> Phase:
    """Concurrency 1, interleaved rounds over the three targets so drift hits them alike."""
    merged = {name: httpload.Samples() for name in stack.targets}
    cpu = dict.fromkeys(stack.targets, 0.0)
    per_round = max(1, plan.requests // plan.rounds)
    for _ in range(plan.rounds):
        for name, target in stack.targets.items():
            raw = httpload.encode_post(target, payload, stack.api_key)
            run = functools.partial(_sequential, target, raw, per_round)
            samples, used = with_cpu(stack.behind(name), run)
            check(samples, f"latency {name}")
            merged[name].total += samples.total
            merged[name].first_data += samples.first_data
            cpu[name] += sum(used.values())
    return summarize(merged, cpu)


def _stats(samples: httpload.Samples, cpu_s: float) -> Phase:
    stats = {
        "p50_ms": ms(httpload.percentile(samples.total, 50)),
        "p95_ms": ms(httpload.percentile(samples.total, 95)),
        "cpu_us_per_request": round(cpu_s / len(samples.total) * 1e6, 1),
    }
    if samples.first_data:
        stats["ttfb_p50_ms"] = ms(httpload.percentile(samples.first_data, 50))
        stats["ttfb_p95_ms"] = ms(httpload.percentile(samples.first_data, 95))
    return stats


def summarize(merged: dict[str, httpload.Samples], cpu: dict[str, float]) -> Phase:
    """Per target stats; ``added``: each gateway minus direct; ``accounting``: sqlite minus null."""
    phase: Phase = {"requests_per_target": len(merged["direct"].total)}
    phase.update({name: _stats(samples, cpu[name]) for name, samples in merged.items()})
    metrics = [key for key in phase["direct"] if key.endswith("_ms")]
    phase["added"] = {
        gw: {key: round(phase[gw][key] - phase["direct"][key], 3) for key in metrics} for gw in FACTORIES
    }
    accounting = {key: round(phase["sqlite"][key] - phase["null"][key], 3) for key in metrics}
    accounting["cpu_us_per_request"] = round(
        phase["sqlite"]["cpu_us_per_request"] - phase["null"]["cpu_us_per_request"], 1
    )
    phase["accounting"] = accounting
    return phase


def throughput_phase(stack: Stack, plan: Plan) -> Phase:
    """``plan.concurrency`` keep-alive connections per gateway for a fixed time (one tenant, one pool)."""
    phase: Phase = {"concurrency": plan.concurrency}
    for name in FACTORIES:
        target = stack.targets[name]
        raw = httpload.encode_post(target, CHAT, stack.api_key)
        arun(httpload.closed_loop(target, raw, plan.concurrency, 0.5))
        run = functools.partial(httpload.closed_loop, target, raw, plan.concurrency, plan.throughput_s)
        (samples, elapsed), used = with_cpu(stack.behind(name), lambda run=run: arun(run()))
        check(samples, f"throughput {name}")
        count = len(samples.total)
        phase[name] = {
            "rps": round(count / elapsed, 1),
            "p50_ms": ms(httpload.percentile(samples.total, 50)),
            "p95_ms": ms(httpload.percentile(samples.total, 95)),
            "cpu_us_per_request": round(sum(used.values()) / count * 1e6, 1),
        }
    phase["sqlite_vs_null"] = round(phase["sqlite"]["rps"] / phase["null"]["rps"], 3)
    return phase


def audit_verifies(stack: Stack) -> bool:
    """The bench tenant's chain after all that traffic (``tollgate audit verify``, exit 0)."""
    try:
        tollgate_cli(stack.env, "audit", "verify", "--tenant", BENCH_TENANT)
    except RuntimeError:
        return False
    return True


# ------------------------------------------------------------------------------------------- report


def _row(label: str, *cells: Any) -> str:
    return f"{label:<26}" + "".join(f"{cell!s:>13}" for cell in cells)


def _latency_rows(label: str, phase: Phase, key: str) -> list[str]:
    added = phase["added"]
    return [
        _row(
            f"{label} (ms)",
            phase["direct"][key],
            phase["null"][key],
            phase["sqlite"][key],
            f"+{added['null'][key]:.3f}",
            f"+{added['sqlite'][key]:.3f}",
            f"+{phase['accounting'][key]:.3f}",
        )
    ]


def render(results: Phase) -> str:
    lat, stream, thr = results["latency_c1"], results["streaming_c1"], results["throughput"]
    lines = [
        f"tollgate accounting path on SQLite ({results['mode']}): {lat['requests_per_target']} requests per"
        f" target at c=1, {os.cpu_count()} CPUs, load average at start {results['loadavg_at_start']}",
        _row("metric", "direct", "null store", "sqlite", "null added", "sqlite added", "accounting"),
        "-" * 104,
        *_latency_rows("c=1 p50", lat, "p50_ms"),
        *_latency_rows("c=1 p95", lat, "p95_ms"),
        *_latency_rows("stream TTFB p50", stream, "ttfb_p50_ms"),
        *_latency_rows("stream total p50", stream, "p50_ms"),
        *_latency_rows("stream total p95", stream, "p95_ms"),
        _row(
            "server CPU us/req, c=1",
            lat["direct"]["cpu_us_per_request"],
            lat["null"]["cpu_us_per_request"],
            lat["sqlite"]["cpu_us_per_request"],
            "",
            "",
            f"+{lat['accounting']['cpu_us_per_request']}",
        ),
        _row(f"c={thr['concurrency']} throughput (req/s)", "", thr["null"]["rps"], thr["sqlite"]["rps"]),
        _row(f"c={thr['concurrency']} p50 (ms)", "", thr["null"]["p50_ms"], thr["sqlite"]["p50_ms"]),
        "-" * 104,
        f"data plane target, p50 added <= {TARGET_P50_ADDED_MS:g} ms: null store "
        f"{_verdict(lat['added']['null']['p50_ms'])}, sqlite {_verdict(lat['added']['sqlite']['p50_ms'])}; "
        f"audit chain after the run: {'verifies' if results['audit_chain_valid'] else 'BROKEN'}",
    ]
    return "\n".join(lines)


def _verdict(added_ms: float) -> str:
    return "ok" if added_ms <= TARGET_P50_ADDED_MS else "MISS"


def run_phases(plan: Plan, state: Path, log_level: str) -> Phase:
    with running_stack(state, log_level) as stack:
        warm_up(stack, plan)
        return {
            "latency_c1": latency_phase(stack, plan, CHAT),
            "streaming_c1": latency_phase(stack, plan, STREAM_CHAT),
            "throughput": throughput_phase(stack, plan),
            "audit_chain_valid": audit_verifies(stack),
        }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts (~20 s)")
    parser.add_argument("--app-log-level", default="INFO", help="TOLLGATE_LOG_LEVEL of both gateways")
    parser.add_argument("--out", type=Path, default=RESULTS / "accounting.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: Phase = {"mode": "quick" if args.quick else "full", "plan": asdict(plan)}
    results["loadavg_at_start"] = round(os.getloadavg()[0], 2)
    try:
        with tempfile.TemporaryDirectory(prefix="tollgate-accounting-") as state:
            results.update(run_phases(plan, Path(state), args.app_log_level))
    except RuntimeError as exc:
        print(f"benchmark could not run: {exc}", file=sys.stderr)
        return 1
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    print(f"\n{results['elapsed_s']} s; JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
