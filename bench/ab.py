"""Two tollgate source trees side by side on the single-deployment path, in one run: added latency at
concurrency 1 (and streamed first byte) over a direct call to the same stub, interleaved rounds.

    git worktree add /tmp/tollgate-before <commit>        # the "before" tree
    python bench/ab.py --before /tmp/tollgate-before      # "after" = this checkout
    python bench/ab.py --before /tmp/a --after /tmp/b --requests 3000 --rounds 10

Each gateway is the chat Lambda's entry (uvicorn --factory tollgate.app:create_app) importing its own tree
(PYTHONPATH=<tree>/layers/tollgate), with full accounting: a key, a token budget and the audit chain in its
own SQLite file, provisioned by that tree's own CLI. Rounds go direct, before, after, direct, before, ...
so that the machine's drift hits all alike. Reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpload
import servers
from overhead import BENCH_BUDGET_TOKENS, BENCH_TENANT, CHAT, STREAM_CHAT, arun, check, ms

REPO = Path(__file__).resolve().parent.parent


def tree_env(base: dict[str, str], tree: Path) -> dict[str, str]:
    return {**base, "PYTHONPATH": str(tree / "layers" / "tollgate")}


def provision(env: dict[str, str]) -> str:
    def cli(*args: str) -> str:
        argv = [sys.executable, "-m", "tollgate.cli", *args]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"tollgate {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    key = json.loads(cli("keys", "create", "--tenant", BENCH_TENANT, "--json"))["key"]
    cli("budgets", "set", "--tenant", BENCH_TENANT, "--tokens", str(BENCH_BUDGET_TOKENS))
    return str(key)


def rounds(
    targets: dict[str, tuple[httpload.Target, str | None]], payload: dict[str, Any], n: int, per: int
) -> dict[str, httpload.Samples]:
    merged = {name: httpload.Samples() for name in targets}
    for _ in range(n):
        for name, (target, key) in targets.items():
            samples = arun(httpload.sequential(target, httpload.encode_post(target, payload, key), per))
            check(samples, name)
            merged[name].total += samples.total
            merged[name].first_data += samples.first_data
    return merged


def summary(merged: dict[str, httpload.Samples]) -> dict[str, dict[str, float]]:
    direct = merged["direct"]
    base = httpload.percentile(direct.total, 50)
    base_ttfb = httpload.percentile(direct.first_data, 50) if direct.first_data else float("nan")
    out: dict[str, dict[str, float]] = {}
    for name, samples in merged.items():
        row = {
            "p50_ms": ms(httpload.percentile(samples.total, 50)),
            "p95_ms": ms(httpload.percentile(samples.total, 95)),
            "added_p50_ms": ms(httpload.percentile(samples.total, 50) - base),
        }
        if samples.first_data:
            row["first_byte_added_p50_ms"] = ms(httpload.percentile(samples.first_data, 50) - base_ttfb)
        out[name] = row
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="source tree of the 'before' gateway")
    parser.add_argument("--after", type=Path, default=REPO, help="source tree of the 'after' gateway")
    parser.add_argument("--requests", type=int, default=2000, help="requests per target and payload")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds")
    args = parser.parse_args(argv)
    per = max(1, args.requests // args.rounds)
    with tempfile.TemporaryDirectory(prefix="tollgate-ab-") as state, ExitStack() as stack:
        work = Path(state)
        port = servers.free_port()
        stub = stack.enter_context(
            servers.running(
                servers.Server("stub", servers.stub_argv(port), {}, work / "stub.log", port), "/health"
            )
        )
        targets: dict[str, tuple[httpload.Target, str | None]] = {
            "direct": (httpload.Target("direct", servers.HOST, stub.port, "/v1/chat/completions"), None)
        }
        for name, tree in (("before", args.before), ("after", args.after)):
            (work / name).mkdir()
            env = tree_env(servers.gateway_env(port, work / name, "WARNING"), tree.resolve())
            key = provision(env)
            gport = servers.free_port()
            argv = servers.gateway_argv(gport, "tollgate.app:create_app", None)
            gw = stack.enter_context(
                servers.running(servers.Server(name, argv, env, work / f"{name}.log", gport), "/health")
            )
            targets[name] = (httpload.Target(name, servers.HOST, gw.port, "/v1/chat/completions"), key)
        rounds(targets, CHAT, 1, 200)  # warm-up
        results = {
            "non_streamed": summary(rounds(targets, CHAT, args.rounds, per)),
            "streamed": summary(rounds(targets, STREAM_CHAT, args.rounds, per)),
            "requests_per_target": per * args.rounds,
        }
    print(json.dumps(results, indent=2))
    for phase in ("non_streamed", "streamed"):
        before, after = results[phase]["before"], results[phase]["after"]  # type: ignore[index]
        print(f"{phase}: added p50 before {before['added_p50_ms']} ms, after {after['added_p50_ms']} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
