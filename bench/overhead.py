"""Gateway overhead on loopback: tollgate vs a direct call to the same stub upstream, and cold start.

    python bench/overhead.py            # ~2-3 minutes
    python bench/overhead.py --quick    # ~30-40 s
    python bench/overhead.py --profile  # also cProfile the gateway (slower; hot spots only)

A stub OpenAI-compatible upstream and the gateway (``python -m uvicorn --factory tollgate.app:create_app``,
the chat Lambda's entry) run in their own processes, one worker each; the load client runs here. Prints a
table and writes ``bench/results/overhead.json``. The numbers are reported, not asserted: exit code 0
whenever the benchmark ran.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

import coldstart
import httpload
import report
import servers

RESULTS = servers.BENCH_DIR / "results"
T = TypeVar("T")
Phase = dict[str, Any]

CHAT: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say hello in a few words."}],
    "max_tokens": 16,
}
STREAM_CHAT: dict[str, Any] = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}


@dataclass(frozen=True, slots=True)
class Plan:
    """How much load each phase sends (bounded counts and durations)."""

    warmup: int
    latency_requests: int
    latency_rounds: int
    concurrency: int
    throughput_warmup_s: float
    throughput_s: float
    stream_requests: int
    coldstart_reps: int


FULL = Plan(300, 3000, 6, 16, 1.5, 10.0, 1500, 7)
QUICK = Plan(100, 600, 3, 16, 0.5, 3.0, 300, 3)


DEFAULT_FACTORY = "tollgate.app:create_app"
BENCH_TENANT = "bench"
BENCH_BUDGET_TOKENS = 10**15  # a real capacity, so that every reserve is a conditional write


def tollgate_cli(env: dict[str, str], *args: str) -> str:
    """Run ``tollgate ARGS`` against the store that ``env`` configures; its stdout."""
    argv = [sys.executable, "-m", "tollgate.cli", *args]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"tollgate {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def provision_key(env: dict[str, str]) -> str:
    """A key of tenant ``bench`` in the gateway's store, with a budget set (reserve/settle really run)."""
    created = json.loads(tollgate_cli(env, "keys", "create", "--tenant", BENCH_TENANT, "--json"))
    tollgate_cli(env, "budgets", "set", "--tenant", BENCH_TENANT, "--tokens", str(BENCH_BUDGET_TOKENS))
    return str(created["key"])


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    factory: str = DEFAULT_FACTORY
    log_level: str = "INFO"
    profile_to: Path | None = None


@dataclass(frozen=True, slots=True)
class Pair:
    direct: httpload.Target
    gateway: httpload.Target
    stub: servers.Server
    gw: servers.Server

    def servers_behind(self, target: httpload.Target) -> dict[str, servers.Server]:
        """The server processes that work for a request sent to ``target``."""
        if target is self.direct:
            return {"stub": self.stub}
        return {"gateway": self.gw, "stub": self.stub}


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def with_cpu(procs: dict[str, servers.Server], run: Callable[[], T]) -> tuple[T, dict[str, float]]:
    """Run ``run``; return its result and the CPU seconds each server process spent meanwhile."""
    before = {name: proc.cpu_seconds() for name, proc in procs.items()}
    result = run()
    used: dict[str, float] = {}
    for name, proc in procs.items():
        start, end = before[name], proc.cpu_seconds()
        if start is not None and end is not None:
            used[name] = end - start
    return result, used


def arun(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def check(samples: httpload.Samples, what: str) -> None:
    if samples.errors:
        raise RuntimeError(f"{what}: {samples.errors} failed requests; last: {samples.last_error}")


def warm_up(pair: Pair, plan: Plan, api_key: str | None) -> None:
    for target in (pair.direct, pair.gateway):
        for payload in (CHAT, STREAM_CHAT):
            raw = httpload.encode_post(target, payload, api_key)
            check(arun(httpload.sequential(target, raw, plan.warmup)), f"warm-up {target.name}")


def _sequential(target: httpload.Target, raw: bytes, count: int) -> httpload.Samples:
    return arun(httpload.sequential(target, raw, count))


def latency_phase(
    pair: Pair, requests: int, rounds: int, payload: dict[str, Any], api_key: str | None
) -> Phase:
    """Concurrency 1, interleaved rounds (direct, gateway, direct, ...) so drift hits both alike."""
    merged = {"direct": httpload.Samples(), "gateway": httpload.Samples()}
    cpu: dict[str, dict[str, float]] = {"direct": {}, "gateway": {}}
    per_round = max(1, requests // rounds)
    for _ in range(rounds):
        for target in (pair.direct, pair.gateway):
            raw = httpload.encode_post(target, payload, api_key)
            run = functools.partial(_sequential, target, raw, per_round)
            samples, used = with_cpu(pair.servers_behind(target), run)
            check(samples, f"latency {target.name}")
            merged[target.name].total += samples.total
            merged[target.name].first_data += samples.first_data
            for name, seconds in used.items():
                cpu[target.name][name] = cpu[target.name].get(name, 0.0) + seconds
    return _latency_summary(merged, cpu)


def _latency_summary(merged: dict[str, httpload.Samples], cpu: dict[str, dict[str, float]]) -> Phase:
    summary: Phase = {"requests_per_target": len(merged["direct"].total)}
    for name, samples in merged.items():
        count = len(samples.total)
        summary[name] = {
            "p50_ms": ms(httpload.percentile(samples.total, 50)),
            "p95_ms": ms(httpload.percentile(samples.total, 95)),
            "p99_ms": ms(httpload.percentile(samples.total, 99)),
        }
        if samples.first_data:
            summary[name]["ttfb_p50_ms"] = ms(httpload.percentile(samples.first_data, 50))
            summary[name]["ttfb_p95_ms"] = ms(httpload.percentile(samples.first_data, 95))
        summary[name]["cpu_us_per_request"] = {
            proc: round(seconds / count * 1e6, 1) for proc, seconds in cpu[name].items() if count
        }
    summary["added"] = {
        key: round(summary["gateway"][key] - value, 3)
        for key, value in summary["direct"].items()
        if isinstance(value, float)
    }
    return summary


def _throughput_one(pair: Pair, target: httpload.Target, plan: Plan, api_key: str | None) -> Phase:
    raw = httpload.encode_post(target, CHAT, api_key)
    arun(httpload.closed_loop(target, raw, plan.concurrency, plan.throughput_warmup_s))
    client_cpu, machine = time.process_time(), servers.machine_busy_seconds()
    (samples, elapsed), used = with_cpu(
        pair.servers_behind(target),
        lambda: arun(httpload.closed_loop(target, raw, plan.concurrency, plan.throughput_s)),
    )
    used["client"] = time.process_time() - client_cpu
    machine_after = servers.machine_busy_seconds()
    if machine is not None and machine_after is not None:
        used["other processes"] = max(0.0, machine_after - machine - sum(used.values()))
    check(samples, f"throughput {target.name}")
    count = len(samples.total)
    return {
        "requests": count,
        "seconds": round(elapsed, 3),
        "rps": round(count / elapsed, 1),
        "p50_ms": ms(httpload.percentile(samples.total, 50)),
        "p95_ms": ms(httpload.percentile(samples.total, 95)),
        "cpu_share": {name: round(seconds / elapsed, 3) for name, seconds in used.items()},
        "cpu_us_per_request": {
            name: round(seconds / count * 1e6, 1)
            for name, seconds in used.items()
            if name in ("stub", "gateway")
        },
    }


def throughput_phase(pair: Pair, plan: Plan, api_key: str | None) -> Phase:
    direct = _throughput_one(pair, pair.direct, plan, api_key)
    gateway = _throughput_one(pair, pair.gateway, plan, api_key)
    return {
        "concurrency": plan.concurrency,
        "direct": direct,
        "gateway": gateway,
        "ratio": round(gateway["rps"] / direct["rps"], 3),
    }


def entry_to_ready_ms(options: GatewayOptions, reps: int) -> float:
    """The real chat entry: spawn ``python -m uvicorn --factory ...`` until GET /health answers 200."""
    argv_for = functools.partial(servers.gateway_argv, factory=options.factory, profile_to=None)
    env = servers.gateway_env(9, RESULTS, options.log_level)  # no upstream is called
    log = RESULTS / "gateway-coldstart.log"
    return ms(
        coldstart.median(
            [servers.seconds_to_ready("gateway", argv_for, env, log, "/health") for _ in range(reps)]
        )
    )


def coldstart_phase(reps: int) -> Phase:
    snippets = {
        "bare_python": coldstart.BARE,
        "litestar": coldstart.LITESTAR,
        "uvicorn_litestar_app": coldstart.LITESTAR_UVICORN_APP,
        "tollgate": coldstart.TOLLGATE,
    }
    walls = {name: coldstart.wall_times(code, reps) for name, code in snippets.items()}
    trees = {name: coldstart.import_trees(snippets[name], reps) for name in list(snippets)[1:]}
    imports = {name: [coldstart.total_ms(tree) for tree in runs] for name, runs in trees.items()}
    wall = {name: coldstart.median(values) for name, values in walls.items()}
    imported = {name: coldstart.median(values) for name, values in imports.items()}
    base, mine = coldstart.median_tree(trees["litestar"]), coldstart.median_tree(trees["tollgate"])
    app_base = coldstart.median_tree(trees["uvicorn_litestar_app"])
    return {
        "reps": reps,
        "snippets": snippets,
        "wall_ms": {name: ms(value) for name, value in wall.items()},
        "wall_min_ms": {name: ms(min(values)) for name, values in walls.items()},
        "importtime_ms": {name: round(value, 1) for name, value in imported.items()},
        "ratio_wall": round(wall["tollgate"] / wall["litestar"], 3),
        "ratio_wall_min": round(min(walls["tollgate"]) / min(walls["litestar"]), 3),
        "ratio_importtime": round(imported["tollgate"] / imported["litestar"], 3),
        "ratio_wall_vs_uvicorn_litestar_app": round(wall["tollgate"] / wall["uvicorn_litestar_app"], 3),
        "top_added_imports": [asdict(item) for item in coldstart.added_imports(base, mine, "tollgate")[:10]],
        "top_added_imports_vs_uvicorn_litestar_app": [
            asdict(item) for item in coldstart.added_imports(app_base, mine, "tollgate")[:10]
        ],
        "own_modules_self_ms": [
            {"module": name, "self_ms": round(value, 1)}
            for name, value in coldstart.own_modules(mine, "tollgate")
        ],
        "added_self_ms_by_package": [
            {"package": name, "self_ms": round(value, 1)}
            for name, value in coldstart.added_by_package(base, mine)[:10]
        ],
    }


def load_phases(plan: Plan, options: GatewayOptions, api_key: str | None, state: Path) -> Phase:
    """``state``: the folder of the gateway's SQLite file (a key is created there unless ``api_key``)."""
    stub_port, gw_port = servers.free_port(), servers.free_port()
    stub = servers.Server(
        "stub", servers.stub_argv(stub_port), dict(os.environ), RESULTS / "stub.log", stub_port
    )
    with servers.running(stub, "/health"):
        env = servers.gateway_env(stub_port, state, options.log_level)
        api_key = api_key or provision_key(env)
        argv = servers.gateway_argv(gw_port, options.factory, options.profile_to)
        gw = servers.Server("gateway", argv, env, RESULTS / "gateway.log", gw_port)
        with servers.running(gw, "/health"):
            host = servers.HOST
            pair = Pair(
                httpload.Target("direct", host, stub_port),
                httpload.Target("gateway", host, gw_port),
                stub,
                gw,
            )
            warm_up(pair, plan, api_key)
            rounds = plan.latency_rounds
            return {
                "latency_c1": latency_phase(pair, plan.latency_requests, rounds, CHAT, api_key),
                "throughput": throughput_phase(pair, plan, api_key),
                "streaming_c1": latency_phase(pair, plan.stream_requests, rounds, STREAM_CHAT, api_key),
            }


def environment() -> Phase:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "server_loop": servers.event_loop_name(),
        "client": "bench/httpload.py: raw asyncio streams, HTTP/1.1 keep-alive",
        "client_loop": "asyncio",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def profile_summary(path: Path, top: int = 25) -> list[Phase]:
    """The gateway's heaviest functions by own time; the event loop's idle wait (epoll) left out."""
    stats: dict[Any, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    busy = [(key, value) for key, value in stats.items() if "epoll" not in key[2]]
    rows = sorted(busy, key=lambda item: item[1][2], reverse=True)[:top]
    return [
        {
            "function": f"{file}:{line}({name})",
            "calls": nc,
            "tottime_s": round(tt, 4),
            "cumtime_s": round(ct, 4),
        }
        for (file, line, name), (_cc, nc, tt, ct, _callers) in rows
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts (~30-40 s)")
    parser.add_argument("--profile", action="store_true", help="run the gateway under cProfile")
    parser.add_argument(
        "--api-key",
        default=None,
        help="sent as 'Authorization: Bearer' to both targets (default: a new key in a temp SQLite file)",
    )
    parser.add_argument(
        "--app-log-level", default="INFO", help="TOLLGATE_LOG_LEVEL of the gateway (default INFO)"
    )
    parser.add_argument(
        "--factory", default=DEFAULT_FACTORY, help="uvicorn --factory target (to compare a variant)"
    )
    parser.add_argument("--skip-coldstart", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "overhead.json", help="where the JSON goes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    RESULTS.mkdir(parents=True, exist_ok=True)
    profile_to = RESULTS / "gateway.prof" if args.profile else None
    options = GatewayOptions(args.factory, args.app_log_level, profile_to)
    started = time.perf_counter()
    results: Phase = {
        "mode": "quick" if args.quick else "full",
        "plan": asdict(plan),
        "environment": environment(),
        "gateway": {
            "factory": options.factory,
            "tollgate_log_level": options.log_level,
            "auth": "--api-key" if args.api_key else "a new key and budget in a temp SQLite file",
        },
    }
    try:
        with tempfile.TemporaryDirectory(prefix="tollgate-bench-") as state:
            results.update(load_phases(plan, options, args.api_key, Path(state)))
    except RuntimeError as exc:
        print(f"benchmark could not run: {exc}", file=sys.stderr)
        return 1
    if not args.skip_coldstart:
        results["coldstart"] = coldstart_phase(plan.coldstart_reps)
        results["coldstart"]["entry_spawn_to_health_ms"] = entry_to_ready_ms(options, plan.coldstart_reps)
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    if profile_to is not None and profile_to.exists():
        results["gateway_profile_top_tottime"] = profile_summary(profile_to)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(report.render(results))
    print(f"\n{results['elapsed_s']} s; JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
