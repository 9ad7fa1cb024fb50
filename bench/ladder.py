"""Where a request's time goes: tollgate rebuilt rung by rung from a bare proxy, in one interleaved run.

    python bench/ladder.py                 # ~2 minutes (+ Portkey's first install)
    python bench/ladder.py --no-portkey --rounds 4 --seconds 4

Every rung runs under uvicorn with the gateway's flags and calls the same stub upstream; the load client
(``httpload.py``) sends each the same non-streamed chat body; rungs take turns in every round
(``peer_load.rounds``: c=1 latency, then c=16 closed-loop throughput with the server's CPU per request):

1. ``aiohttp``: a bare ASGI proxy on an ``aiohttp.ClientSession`` (``floor_apps.raw_aiohttp``);
2. ``httpx``: the same on tollgate's upstream client, the ``httpx.AsyncClient`` on the aiohttp transport;
3. ``litestar-asgi``: + Litestar's routing and middleware (an ``@asgi`` route);
4. ``litestar``: + a Litestar request handler (``Request`` in, ``Response`` out);
5. ``tollgate-null``: tollgate's chat entry on the no-op store (``null_store.py``): key, validation,
   routing engine, provider adapter, pricing, audit hashing, the request log line; no store work;
6. ``tollgate``: the chat entry on SQLite with a key, a token budget and the audit chain (the books).

Portkey's gateway (``peer_targets.portkey``, installed by ``peer_install``) runs alongside as the reference.
Each row shows its added latency and CPU and the step from the rung before: what that layer costs. Writes
``bench/results/ladder.json``; reported, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peer_install
import peer_targets
import servers
from peer_load import RESULTS, Plan, Running, rounds, start, target_stats, warm_up

FLOORS = {
    "aiohttp": "floor_apps:raw_aiohttp",
    "httpx": "floor_apps:raw_httpx",
    "litestar-asgi": "floor_apps:litestar_asgi",
    "litestar": "floor_apps:litestar_handler",
}
RUNGS = [*FLOORS, "tollgate-null", "tollgate"]


def rung(name: str, port: int, stub_port: int, state: Path) -> peer_targets.Launch:
    if name in FLOORS:
        upstream = f"http://{servers.HOST}:{stub_port}/v1/chat/completions"
        env = servers.with_bench_on_path({**servers.without_settings(), "LADDER_UPSTREAM": upstream})
        argv = servers.gateway_argv(port, FLOORS[name], None)
        return peer_targets.Launch(name, argv, env, "/health", peer_targets.STUB_KEY, "floor_apps.py")
    if name == "tollgate-null":
        env = servers.with_bench_on_path(servers.gateway_env(stub_port, state, "WARNING"))
        argv = servers.gateway_argv(port, "null_store:create_app", None)
        return peer_targets.Launch(name, argv, env, "/health", "sk-any-key", "null_store.py")
    return peer_targets.tollgate(port, stub_port, state, "WARNING", "chat")  # its name is "tollgate"


def start_all(stack: contextlib.ExitStack, state: Path, portkey: bool) -> list[Running]:
    stub_port = servers.free_port()
    running = [start(stack, peer_targets.stub(stub_port), stub_port)]
    for name in RUNGS:
        port = servers.free_port()
        running.append(start(stack, rung(name, port, stub_port, state), port))
    if portkey:
        try:
            installed = peer_install.INSTALLERS["portkey"](RESULTS / "peers-install-portkey.log")
            port = servers.free_port()
            running.append(start(stack, peer_targets.portkey(installed, port, stub_port, state), port))
        except (RuntimeError, OSError) as exc:
            print(f"skipping portkey: {str(exc).splitlines()[0]}", file=sys.stderr)
    return running


def table(metrics: dict[str, dict[str, Any]]) -> list[str]:
    direct = metrics["direct"]["c1"]["p50_ms"]
    rows = [
        "| rung | c=1 p50 added (ms) | step (ms) | c=16 req/s | CPU µs/request at c=16 | step (µs) "
        "| errors |",
        "|---|---|---|---|---|---|---|",
    ]
    before: dict[str, Any] | None = None
    for name, stats in metrics.items():
        if name == "direct":
            continue
        added = stats["c1"]["p50_ms"] - direct
        cpu = stats["c16"]["cpu_us_per_request"]
        errors = stats["c1"]["errors"] + stats["c16"]["errors"]
        if name in RUNGS and before is not None:
            step_ms = f"{added - before['added']:+.3f}"
            step_cpu = f"{cpu - before['cpu']:+.0f}"
        else:
            step_ms = step_cpu = ""
        rps = stats["c16"]["rps"]
        cells = [name, f"{added:+.3f}", step_ms, f"{rps:,.0f}", f"{cpu:,.0f}", step_cpu, str(errors)]
        rows.append("| " + " | ".join(cells) + " |")
        if name in RUNGS:
            before = {"added": added, "cpu": cpu}
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=900, help="c=1 requests per rung over all rounds")
    parser.add_argument("--seconds", type=float, default=3.0, help="c=16 seconds per rung and round")
    parser.add_argument("--no-portkey", action="store_true", help="leave out the Portkey reference")
    parser.add_argument("--out", type=Path, default=RESULTS / "ladder.json")
    args = parser.parse_args(argv)
    if min(args.rounds, args.requests) < 1 or args.seconds <= 0:
        parser.error("--rounds, --requests and --seconds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # the stream phase of peer_load.rounds gets one request per round: the floors do not stream
    plan = Plan(args.rounds, args.requests, args.rounds, 16, args.seconds, warmup=100)
    with contextlib.ExitStack() as stack:
        state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tollgate-ladder-")))
        running = start_all(stack, state, portkey=not args.no_portkey)
        warm_up(running, plan)
        rounds(running, plan)
        metrics = {run.launch.name: target_stats(run) for run in running}
    RESULTS.mkdir(exist_ok=True)
    args.out.write_text(json.dumps({"environment": servers.event_loop_name(), "metrics": metrics}, indent=2))
    print("\n".join(table(metrics)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
