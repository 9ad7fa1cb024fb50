"""Find what a ``tollgate serve`` holds per request: the RSS curve of bench/peers.py (SQLite, a key and a
budget, non-streamed chat at c=16 against the stub upstream), with the server under tracemalloc.

    python bench/rss_trace.py [--total 20000] [--every 2000] [--trace]

With ``--trace`` the server is this file run as ``serve`` (tracemalloc started before tollgate is imported;
SIGUSR1 writes a snapshot), and the top growth by traceback between the first and the last point is printed.
Without it, the plain ``tollgate serve`` is measured (the RSS numbers to report).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path


def _serve_traced() -> int:
    """The server side of ``--trace`` (never imported by tollgate itself)."""
    tracemalloc.start(int(os.environ.get("RSS_TRACE_FRAMES", "12")))
    out = Path(os.environ["RSS_TRACE_DIR"])
    count = [0]

    def dump(_signum: int, _frame: object) -> None:
        count[0] += 1
        tracemalloc.take_snapshot().dump(str(out / f"snap-{count[0]}.pickle"))
        (out / f"snap-{count[0]}.done").touch()

    signal.signal(signal.SIGUSR1, dump)
    from tollgate.cli import main

    sys.argv = ["tollgate", "serve", *sys.argv[2:]]
    return main()


def _wait_snapshot(out: Path, n: int) -> Path:
    for _ in range(600):
        if (out / f"snap-{n}.done").exists():
            return out / f"snap-{n}.pickle"
        time.sleep(0.1)
    raise RuntimeError("no snapshot")


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import peer_load
    import peer_targets
    import servers

    parser = argparse.ArgumentParser()
    parser.add_argument("--total", type=int, default=20000)
    parser.add_argument("--every", type=int, default=2000)
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tollgate-rss-")))
        stub_port = servers.free_port()
        peer_load.start(stack, peer_targets.stub(stub_port), stub_port)
        port = servers.free_port()
        launch = peer_targets.tollgate(port, stub_port, state, "WARNING", "serve")
        if args.trace:
            launch = replace(
                launch,
                argv=[sys.executable, __file__, "serve", *launch.argv[4:]],
                env={**launch.env, "RSS_TRACE_DIR": str(state)},
            )
        run = peer_load.start(stack, replace(launch, name="tollgate-rss"), port)
        pid = run.server.process.pid
        snaps: list[Path] = []
        print(f"requests={0:>6} rss_mb={peer_load.rss_mb(pid)}", flush=True)
        for done in range(args.every, args.total + 1, args.every):
            batch = peer_load.fixed_count(run.target, run.chat, 16, args.every)
            errors = peer_load.guarded(batch, timeout=60 + args.every * 0.1, expected=args.every).errors
            threads = len(os.listdir(f"/proc/{pid}/task"))
            files = {p.name: round(p.stat().st_size / 2**20, 1) for p in state.glob("bench.db*")}
            print(
                f"requests={done:>6} rss_mb={peer_load.rss_mb(pid)} threads={threads} errors={errors}",
                files,
                flush=True,
            )
            if args.trace and (done == args.every or done + args.every > args.total):
                os.kill(pid, signal.SIGUSR1)
                snaps.append(_wait_snapshot(state, len(snaps) + 1))
        if args.trace and len(snaps) == 2:
            first, last = (tracemalloc.Snapshot.load(str(s)) for s in snaps)
            for stat in last.compare_to(first, "traceback")[:12]:
                print(f"\n{stat.size_diff / 1024:+.1f} KiB, {stat.count_diff:+d} blocks")
                for line in stat.traceback.format()[-16:]:
                    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(_serve_traced() if sys.argv[1:2] == ["serve"] else main())
