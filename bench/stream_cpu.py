"""The gateway's CPU per streamed chunk, without a model: what it takes from a model sharing its cores.

    python bench/stream_cpu.py                         # 6 streams of 1,000 chunks, one every 2 ms
    python bench/stream_cpu.py --before /path/to/other/tree --rounds 4
    python bench/stream_cpu.py --py-spy /tmp/stream.txt    # also sample the gateway with py-spy (raw)

The stub upstream (``bench/stub_upstream.py --stream-chunks N --stream-interval-ms T``) streams N content
chunks, one every T ms, as llama-server decodes, so each upstream event arrives on its own; the chat
Lambda's entry under uvicorn serves ``/v1/chat/completions`` with full accounting on SQLite (a key, a budget,
the audit chain). Reported: the gateway's CPU time (every thread's ``schedstat``) over the streams, per
chunk, for each tree in turn (``--before``: another checkout's ``layers/tollgate``, rounds interleaved).
Reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers
from overhead import provision_key

ENTRY = "tollgate.chat_entry:create_app"
ROOT = Path(__file__).resolve().parent.parent


async def stream(url: str, key: str) -> int:
    """One streamed answer; the number of SSE events the client got."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    events = 0
    async with (
        httpx.AsyncClient(timeout=120) as client,
        client.stream("POST", url, json=body, headers={"Authorization": f"Bearer {key}"}) as response,
    ):
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {(await response.aread())[:300]!r}")
        async for line in response.aiter_lines():
            events += line.startswith("data: ")
    return events


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of ``pid`` so far, in ns (``schedstat``: finer than /proc's 10 ms ticks)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError):
            continue  # a thread that just ended
    return total


def measure(
    tree: Path, stub_port: int, args: argparse.Namespace, work: Path, spy: Path | None
) -> list[float]:
    """CPU µs per chunk of the gateway of ``tree``, one value per stream."""
    env = servers.gateway_env(stub_port, work, "INFO")
    env["PYTHONPATH"] = str(tree / "layers" / "tollgate")
    env["TOLLGATE_SQLITE_PATH"] = str(work / f"{tree.name}-{time.monotonic_ns()}.db")
    key = provision_key(env)
    port = servers.free_port()
    profile = args.profile if (spy is not None or args.py_spy is None) and tree == ROOT else None
    gateway = servers.Server(
        "tollgate", servers.gateway_argv(port, ENTRY, profile), env, work / "gw.log", port
    )
    url = f"http://{servers.HOST}:{port}/v1/chat/completions"
    per_chunk: list[float] = []
    with servers.running(gateway, "/health"):
        asyncio.run(stream(url, key))  # warm: the first request builds the request models
        sampler = None
        if spy is not None:
            argv = [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "-r",
                "1000",
                "--native",
                "--idle",
                "-f",
                "raw",
                "-o",
                str(spy),
                "-p",
                str(gateway.process.pid),
            ]
            sampler = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            time.sleep(1.0)
        for _ in range(args.streams):
            before = cpu_ns(gateway.process.pid)
            events = asyncio.run(stream(url, key))
            after = cpu_ns(gateway.process.pid)
            if events < args.chunks:
                raise RuntimeError(f"too few events ({events})")
            per_chunk.append((after - before) / args.chunks / 1000)
        if sampler is not None:
            sampler.send_signal(signal.SIGINT)
            sampler.wait(30)
    return per_chunk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--interval-ms", type=float, default=2.0)
    parser.add_argument("--streams", type=int, default=3, help="streams per round and tree")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", type=Path, help="another tree to measure, interleaved")
    parser.add_argument("--profile", type=Path, help="run this tree's gateway under cProfile, stats here")
    parser.add_argument("--py-spy", type=Path, help="write py-spy's raw samples of this tree's gateway here")
    args = parser.parse_args(argv)
    trees = {"this": ROOT} | ({"before": args.before.resolve()} if args.before else {})
    work = Path(tempfile.mkdtemp(prefix="tollgate-stream-cpu-"))
    stub_port = servers.free_port()
    stub_argv = servers.stub_argv(stub_port)
    stub_argv += ["--stream-chunks", str(args.chunks), "--stream-interval-ms", str(args.interval_ms)]
    stub = servers.Server("stub", stub_argv, dict(os.environ), work / "stub.log", stub_port)
    results: dict[str, list[float]] = {name: [] for name in trees}
    with servers.running(stub, "/"):
        for round_no in range(args.rounds):
            for name, tree in trees.items():
                spy = args.py_spy if (args.py_spy and name == "this" and round_no == 0) else None
                results[name] += measure(tree, stub_port, args, work, spy)
    print(
        f"gateway CPU per streamed chunk ({args.chunks} chunks, one every {args.interval_ms} ms, "
        f"{args.rounds} rounds x {args.streams} streams):"
    )
    for name, values in results.items():
        shown = ", ".join(f"{v:.0f}" for v in values)
        print(f"  {name:7s} median {statistics.median(values):6.1f} µs  ({shown})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
