"""Where does one tenant's fixed-rate latency grow with N? (issue 11's third target, measured).

    python bench/fixed_rate_probe.py --stores sqlite --n 8 --rate 20 --seconds 6

Per store: a fresh store, the stub, N gateway processes (as ``bench/scale.py``), warmed up, then one tenant
at ``--rate`` req/s in all, open loop, in these layouts, one after the other:

- ``spread``: the requests spread over the N gateways, one every 1/rate s (``bench/scale.py``'s phase);
- ``bursts``: the same, but every gateway's pace starting at once (the bench before the fix): bursts of N;
- ``one``: all of them to gateway 0, the N-1 others running but idle;
- ``stopped``: all to gateway 0, the N-1 others SIGSTOPped (no CPU, no store traffic at all).

``bursts`` vs ``spread`` is what the bench's own arrival pattern costs; ``spread`` vs ``one`` separates
what the spreading costs from what the mere presence of N-1 idle gateways costs (their background work,
their share of the CPU); ``one`` vs ``stopped`` isolates the latter.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpload
import servers
from audit_contention import dynalite, point_at
from scale import AUDIT_KEY, CHAT, fixed_rate, gateways, provision, store_env


def probe(kind: str, n: int, args: argparse.Namespace, workdir: Path, stub_port: int) -> list[str]:
    run = uuid.uuid4().hex[:8]
    where = str(workdir / f"probe-{n}-{run}.db") if kind == "sqlite" else f"probe-{n}-{run}"
    (key,) = asyncio.run(provision(kind, where, [f"one-{run}"]))
    env = servers.gateway_env(stub_port, workdir, "WARNING")
    env.update(store_env(kind, where), TOLLGATE_AUDIT_KEY=AUDIT_KEY)
    lines = []
    with gateways(n, env, workdir) as running:
        targets = [httpload.Target(s.name, servers.HOST, s.port) for s in running]

        async def warm() -> None:
            await asyncio.gather(
                *(httpload.sequential(t, httpload.encode_post(t, CHAT, key), args.warmup) for t in targets)
            )

        asyncio.run(warm())
        for layout in args.layouts.split(","):
            pairs = [(t, key) for t in targets] if layout in ("spread", "bursts") else [(targets[0], key)]
            stopped = running[1:] if layout == "stopped" else []
            for server in stopped:
                server.process.send_signal(signal.SIGSTOP)
            try:
                result: dict[str, Any] = asyncio.run(
                    fixed_rate(pairs, args.rate, args.seconds, bursts=layout == "bursts")
                )
            finally:
                for server in stopped:
                    server.process.send_signal(signal.SIGCONT)
            lines.append(
                f"{kind:<9}N={n:<3}{layout:<9}{args.rate:>6} req/s  p50 {result['p50_ms']:>7} ms  "
                f"p95 {result['p95_ms']:>7} ms  ({result['answered']} answered, {result['errors']} errors)"
            )
            print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stores", default="sqlite,dynamodb")
    parser.add_argument("--n", default="1,8", help="numbers of gateway processes")
    parser.add_argument("--layouts", default="bursts,spread,one,stopped")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tollgate-probe-") as tmp:
        workdir = Path(tmp)
        stub_port = servers.free_port()
        stub = servers.Server(
            "stub", servers.stub_argv(stub_port), dict(os.environ), workdir / "stub.log", stub_port
        )
        with servers.running(stub, "/health"), contextlib.ExitStack() as stack:
            for kind in args.stores.split(","):
                if kind == "dynamodb":
                    point_at(stack.enter_context(dynalite(workdir / "dynalite.log")), workdir)
                for n in (int(x) for x in args.n.split(",")):
                    probe(kind, n, args, workdir, stub_port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
