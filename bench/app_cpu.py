"""tollgate's own CPU per chat request, in process: no server, no sockets, no other process sharing the cores.

    python bench/app_cpu.py                          # ~30 s
    python bench/app_cpu.py --before /tmp/main-tree  # that tree's layers/tollgate too, in turns
    python bench/app_cpu.py --profile tottime        # cProfile of the SQLite variant instead

The chat app (``tollgate.app.create_app``) is driven through its ASGI interface: lifespan, then one
non-streamed ``/v1/chat/completions`` after another with a key of tenant ``bench`` and a token budget, the
upstream an ``httpx.MockTransport`` answering the stub's completion. Two stores: SQLite in a temp dir (the
books: reserve, settle, the audit chain, the cost rollup) and ``null_store.NullStore`` (none of it). What
is measured is ``time.process_time()`` per request over ``--requests`` requests after a warm-up: tollgate,
Litestar and httpx's share of a request, without uvicorn, aiohttp or the kernel's, and without their noise,
so two trees' difference of a few µs shows. Each tree runs in its own interpreter, trees and stores in
turns. Reported, never asserted; ``bench/ladder.py`` puts these numbers in the whole request's context.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))


def post_scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The ASGI scope of one HTTP/1.1 POST from a loopback client."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """The app's ASGI lifespan around the block: started (an error if startup fails), then shut down."""
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    said: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await incoming.put({"type": "lifespan.startup"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    running = asyncio.ensure_future(app(scope, incoming.get, said.put))
    started = await asyncio.wait_for(said.get(), 30)
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"startup failed: {started}")
    try:
        yield
    finally:
        await incoming.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(running, 30)


def _drive(app: Any, body: bytes, key: str, count: int) -> float:
    """Lifespan, a warm-up, then ``count`` requests; CPU µs per request."""

    async def run() -> float:
        async with lifespan(app):
            return await measure()

    async def measure() -> float:
        headers = [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        http = post_scope("/v1/chat/completions", headers)
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def one() -> None:
            sent.clear()
            await app({**http, "state": {}}, receive, send)

        for _ in range(300):
            await one()
        if sent[0].get("status") != 200:
            raise RuntimeError(f"the warm-up request failed: {sent}")
        began = time.process_time()
        for _ in range(count):
            await one()
        return (time.process_time() - began) / count * 1e6

    try:
        import uvloop

        return uvloop.run(run())
    except ImportError:
        return asyncio.run(run())


def child(store: str, count: int, profile: str | None) -> None:
    """In a fresh interpreter: build the app on ``store`` and print its CPU µs per request."""
    import httpx

    import servers
    import stub_upstream
    from overhead import CHAT, provision_key

    state = Path(tempfile.mkdtemp(prefix="tollgate-app-cpu-"))
    env = servers.gateway_env(9, state, "WARNING")  # port 9: the mock transport answers, nothing listens
    os.environ.clear()
    os.environ.update(env)
    key = provision_key(env)

    def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=stub_upstream.COMPLETION, headers={"content-type": "application/json"}
        )

    from tollgate.app import create_app

    transport = httpx.MockTransport(answer)
    if store == "null":
        from null_store import NullStore

        app = create_app(http_transport=transport, store=NullStore())
    else:
        app = create_app(http_transport=transport)
    body = json.dumps(CHAT).encode()
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        _drive(app, body, key, count)
        profiler.disable()
        pstats.Stats(profiler).sort_stats(profile).print_stats(40)
        return
    print(json.dumps({"cpu_us": _drive(app, body, key, count)}))


def _measure(tree: Path | None, store: str, count: int) -> float:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree / "layers" / "tollgate")
    argv = [sys.executable, __file__, "--child", store, "--requests", str(count)]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["cpu_us"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3000, help="measured requests per run")
    parser.add_argument(
        "--before", type=Path, help="a tree whose layers/tollgate runs in turns with this one"
    )
    parser.add_argument("--profile", choices=("tottime", "cumulative"), help="cProfile the SQLite variant")
    parser.add_argument("--child", choices=("sqlite", "null"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.requests < 1:
        parser.error("--rounds and --requests must be positive")
    if args.child or args.profile:
        child(args.child or "sqlite", args.requests, args.profile)
        return 0
    trees: dict[str, Path | None] = {"this tree": None}
    if args.before:
        trees["--before"] = args.before
    runs: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            for store in ("sqlite", "null"):
                runs.setdefault((name, store), []).append(_measure(tree, store, args.requests))
    print("| tree | store | CPU µs per request (median) | runs |")
    print("|---|---|---|---|")
    for (name, store), values in runs.items():
        shown = ", ".join(f"{v:.0f}" for v in values)
        print(f"| {name} | {store} | {statistics.median(values):.0f} | {shown} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
