"""tollgate side by side with peer gateways, in one run: Portkey's OSS gateway (Node) and LiteLLM's proxy.

    python bench/peers.py --quick              # ~1.5 minutes (the first run also installs the peers: ~2 min)
    python bench/peers.py                      # ~4.5 minutes
    python bench/peers.py --rss-curve          # + tollgate's RSS every 2,000 requests up to 20,000 (~1.5 min)
    python bench/peers.py --peers tollgate,portkey --rounds 4 --requests 800
    python bench/peers.py --install-only       # install the peers into the cache and stop

The peers are installed once, at pinned versions, under ``${TOLLGATE_CACHE:-~/.cache/tollgate}/peers/``
(``peer_install.py``). One stub upstream (``stub_upstream.py``) serves every target; the load client
(``httpload.py``) sends each target the same body (non-streamed ``max_tokens: 16``, and streamed) with only
its own auth and routing headers. Targets take turns in interleaved rounds (direct, tollgate, portkey,
litellm, direct, ...) for each phase, so drift on a shared machine hits them alike: c=1 latency, c=1
streaming (time to the first ``data:`` chunk), c=16 closed-loop throughput. After the rounds: the RSS of each
server's process tree. Prints one table (absolute numbers, added ms vs direct, tollgate/peer ratios) and
writes ``bench/results/peers.json``. Every process it starts is stopped on the way out, also on Ctrl-C or an
error; every batch of requests has a time limit. The exit code is 0 whenever the benchmark ran: these numbers
are reported, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peer_install
import peer_targets
import peers_report
import servers
from peer_load import (
    FULL,
    QUICK,
    Plan,
    Running,
    fixed_count,
    guarded,
    rounds,
    rss_mb,
    start,
    stop_tree,
    target_stats,
    warm_up,
)

RESULTS = servers.BENCH_DIR / "results"
PEERS = ("tollgate", "portkey", "litellm")
Stats = dict[str, Any]


def start_all(
    stack: contextlib.ExitStack, names: list[str], state: Path, args: argparse.Namespace
) -> tuple[list[Running], dict[str, str]]:
    """The stub, then each chosen gateway; a peer that cannot be installed or started is skipped."""
    stub_port = servers.free_port()
    running = [start(stack, peer_targets.stub(stub_port), stub_port)]
    skipped: dict[str, str] = {}
    for name in names:
        port = servers.free_port()
        try:
            if name == "tollgate":
                launch = peer_targets.tollgate(
                    port, stub_port, state, args.app_log_level, args.tollgate_entry
                )
            else:
                installed = peer_install.INSTALLERS[name](RESULTS / f"peers-install-{name}.log")
                make = peer_targets.portkey if name == "portkey" else peer_targets.litellm
                launch = make(installed, port, stub_port, state)
            running.append(start(stack, launch, port))
        except (RuntimeError, OSError) as exc:
            if name == "tollgate":
                raise
            skipped[name] = str(exc).splitlines()[0]
            print(f"skipping {name}: {skipped[name]}", file=sys.stderr)
    return running, skipped


def rss_curve(stack: contextlib.ExitStack, stub_port: int, plan: Plan, args: argparse.Namespace) -> Stats:
    """A fresh tollgate (its own state): RSS at start and after every ``rss_every`` requests at c=16."""
    state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tollgate-peers-rss-")))
    port = servers.free_port()
    launch = peer_targets.tollgate(port, stub_port, state, args.app_log_level, args.tollgate_entry)
    run = start(stack, replace(launch, name="tollgate-rss"), port)
    pid = run.server.process.pid
    points = [{"requests": 0, "rss_mb": rss_mb(pid)}]
    errors = 0
    for done in range(plan.rss_every, plan.rss_total + 1, plan.rss_every):
        print(f"rss curve: {done}/{plan.rss_total}", file=sys.stderr, flush=True)
        batch = fixed_count(run.target, run.chat, plan.concurrency, plan.rss_every)
        errors += guarded(batch, timeout=60 + plan.rss_every * 0.1, expected=plan.rss_every).errors
        points.append({"requests": done, "rss_mb": rss_mb(pid)})
    growth = peers_report.growth_second_half(points)
    return {
        "concurrency": plan.concurrency,
        "points": points,
        "errors": errors,
        "growth_second_half_mb": growth,
    }


def environment() -> Stats:
    try:
        node = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except OSError:
        node = None
    cpu = next((ln.split(":", 1)[1].strip() for ln in _cpuinfo() if ln.startswith("model name")), None)
    return {
        "python": platform.python_version(),
        "node": node,
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "server_loop": servers.event_loop_name(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def measure(names: list[str], plan: Plan, args: argparse.Namespace) -> Stats:
    with contextlib.ExitStack() as stack:
        state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tollgate-peers-")))
        running, skipped = start_all(stack, names, state, args)
        warm_up(running, plan)
        rounds(running, plan)
        results: Stats = {
            "targets": {r.launch.name: {"version": r.launch.version, "note": r.launch.note} for r in running},
            "skipped": skipped,
            "metrics": {r.launch.name: target_stats(r) for r in running},
        }
        if args.rss_curve and "tollgate" in names:
            for run in running[1:]:  # the peers have had their turn; give the curve the machine
                stop_tree(run.server)
            results["rss_curve"] = rss_curve(stack, running[0].server.port, plan, args)
        return results


# ------------------------------------------------------------------------------------------- command line


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def _peer_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(PEERS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(PEERS)} (got {text!r})")
    return list(dict.fromkeys(names))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="smaller counts (~1.5 minutes)")
    add("--peers", type=_peer_list, default=list(PEERS), help="comma-separated, of: " + ", ".join(PEERS))
    add("--rounds", type=_positive(int), help="interleaved rounds (default 6; --quick 3)")
    add(
        "--requests", type=_positive(int), help="c=1 non-streamed requests per target, all rounds (3000; 600)"
    )
    add("--stream-requests", type=_positive(int), help="c=1 streamed requests per target (1200; 300)")
    add("--seconds", type=_positive(float), help="closed-loop seconds per target and round (4; 2)")
    add("--concurrency", type=_positive(int), help="connections of the closed loop (16)")
    add("--warmup", type=_positive(int), help="warm-up requests per target and payload (200; 50)")
    add("--rss-curve", action="store_true", help="also: a fresh tollgate's RSS every --rss-every requests")
    add("--rss-every", type=_positive(int), help="requests between RSS points (2000)")
    add("--rss-total", type=_positive(int), help="requests of the RSS curve (20000)")
    add(
        "--tollgate-entry",
        choices=("serve", "chat"),
        default="serve",
        help="`tollgate serve` (default) or the chat Lambda's (uvicorn --factory tollgate.app:create_app)",
    )
    add(
        "--app-log-level",
        default="INFO",
        help="TOLLGATE_LOG_LEVEL of tollgate (default INFO, as in production)",
    )
    add("--install-only", action="store_true", help="install the chosen peers into the cache, then exit")
    add("--markdown", action="store_true", help="also print the table in Markdown (for bench/README.md)")
    add("--report", type=Path, metavar="JSON", help="print the table of an earlier run's JSON; run nothing")
    add("--out", type=Path, default=RESULTS / "peers.json", help="where the JSON goes")
    return parser.parse_args(argv)


def plan_from(args: argparse.Namespace) -> tuple[Plan, str]:
    """The plan (--quick or the full one, with any count given on the command line) and its name."""
    plan = QUICK if args.quick else FULL
    chosen = {k: getattr(args, k) for k in asdict(plan) if getattr(args, k, None) is not None}
    mode = "quick" if args.quick else "full"
    return replace(plan, **chosen), f"{mode}, adjusted" if chosen else mode


def install_only(names: list[str]) -> int:
    status = 0
    for name in (n for n in names if n in peer_install.INSTALLERS):
        try:
            found = peer_install.INSTALLERS[name](RESULTS / f"peers-install-{name}.log")
            print(f"{name} {found.version}: {found.entry}")
        except peer_install.PeerUnavailable as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            status = 1
    return status


def jsonable(value: Any) -> Any:
    """NaN and infinities (a metric that could not be measured) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def show(results: Stats, markdown: bool) -> None:
    print(peers_report.render(results))
    if markdown:
        print("\n" + peers_report.markdown(results))


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the ExitStack, which stops every server


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        show(json.loads(args.report.read_text()), args.markdown)
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.install_only:
        return install_only(args.peers)
    signal.signal(signal.SIGTERM, _terminate)
    (plan, mode), began = plan_from(args), time.perf_counter()
    results: Stats = {"mode": mode, "plan": asdict(plan), "environment": environment()}
    try:
        results.update(measure(args.peers, plan, args))
    except RuntimeError as exc:
        print(f"benchmark could not run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; every server has been stopped", file=sys.stderr)
        return 130
    results["environment"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["ratios"] = peers_report.ratios(results)
    results["elapsed_s"] = round(time.perf_counter() - began, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(jsonable(results), indent=2, allow_nan=False, default=str) + "\n")
    show(results, args.markdown)
    print(f"\n{results['elapsed_s']} s; JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
