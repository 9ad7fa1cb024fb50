"""The load side of ``bench/peers.py``: start a target, send it timed batches, and keep its tallies.

Every batch has a time limit, and a batch that breaks (a reset, a timeout, a bad reply) counts as failed
requests of that target instead of stopping the run: one broken peer must not hide the others' numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

import httpload
import peer_targets
import peers_report
import proctree
import servers
from overhead import CHAT, STREAM_CHAT

RESULTS = servers.BENCH_DIR / "results"
Stats = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Plan:
    rounds: int
    requests: int  # c=1 non-streamed, per target over all rounds
    stream_requests: int  # c=1 streamed, per target over all rounds
    concurrency: int
    seconds: float  # closed loop, per target and round
    warmup: int  # per target and payload, before the first round
    rss_every: int = 2000
    rss_total: int = 20000


FULL = Plan(rounds=6, requests=3000, stream_requests=1200, concurrency=16, seconds=4.0, warmup=200)
QUICK = Plan(rounds=3, requests=600, stream_requests=300, concurrency=16, seconds=2.0, warmup=50)


@dataclass(slots=True)
class Running:
    """A started target: its server process, the pre-encoded requests, and what it has measured so far."""

    launch: peer_targets.Launch
    server: servers.Server
    chat: bytes
    stream: bytes
    ready_s: float
    tallies: dict[str, httpload.Samples] = field(default_factory=dict)
    # c=16 totals: seconds, the server's CPU seconds, the CPU seconds of other processes on the machine
    load: dict[str, float] = field(default_factory=dict)

    @property
    def target(self) -> httpload.Target:
        return httpload.Target(self.launch.name, servers.HOST, self.server.port)

    def tally(self, phase: str) -> httpload.Samples:
        return self.tallies.setdefault(phase, httpload.Samples())


def stop_tree(server: servers.Server) -> None:
    """Stop the server (SIGINT, then kill), then kill any of its descendants that outlived it."""
    leftovers = [pid for pid in proctree.tree(server.process.pid) if pid != server.process.pid]
    server.stop()
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def start(stack: contextlib.ExitStack, launch: peer_targets.Launch, port: int) -> Running:
    """Spawn, register the stop first (so a failed start is cleaned up too), then wait until ready."""
    began = time.perf_counter()
    server = servers.Server(launch.name, launch.argv, launch.env, RESULTS / f"peers-{launch.name}.log", port)
    stack.callback(stop_tree, server)
    server.wait_ready(launch.ready, timeout=launch.ready_timeout_s)
    ready_s = time.perf_counter() - began
    target = httpload.Target(launch.name, servers.HOST, port)
    encode = httpload.encode_post
    chat = encode(target, CHAT, launch.api_key, launch.headers)
    stream = encode(target, STREAM_CHAT, launch.api_key, launch.headers)
    return Running(launch, server, chat, stream, round(ready_s, 2))


def guarded(coro: Coroutine[Any, Any, httpload.Samples], timeout: float, expected: int) -> httpload.Samples:
    """Run one batch with a time limit; a batch that breaks (reset, timeout, garbage) counts as failed."""
    try:
        return asyncio.run(asyncio.wait_for(coro, timeout))
    except Exception as exc:  # a broken peer fails its batch, not the whole run
        return httpload.Samples(errors=max(1, expected), last_error=f"{type(exc).__name__}: {exc}"[:300])


def merge(into: httpload.Samples, batch: httpload.Samples) -> None:
    into.total += batch.total
    into.first_data += batch.first_data
    into.errors += batch.errors
    into.last_error = batch.last_error or into.last_error


async def fixed_count(target: httpload.Target, raw: bytes, concurrency: int, count: int) -> httpload.Samples:
    """``count`` requests over ``concurrency`` keep-alive connections (a closed loop bounded by count)."""
    shares = [count // concurrency + (1 if i < count % concurrency else 0) for i in range(concurrency)]
    batches = await asyncio.gather(*(httpload.sequential(target, raw, n) for n in shares if n))
    merged = httpload.Samples()
    for batch in batches:
        merge(merged, batch)
    return merged


async def _closed_loop(target: httpload.Target, raw: bytes, plan: Plan) -> httpload.Samples:
    samples, _elapsed = await httpload.closed_loop(target, raw, plan.concurrency, plan.seconds)
    return samples


def sequential_batch(run: Running, raw: bytes, phase: str, count: int) -> None:
    batch = guarded(httpload.sequential(run.target, raw, count), timeout=30 + count * 0.5, expected=count)
    merge(run.tally(phase), batch)


def throughput_batch(run: Running, plan: Plan, stub: Running) -> None:
    """c=16 for ``plan.seconds``; the server's CPU, and the CPU of everything else on the machine."""
    pid, busy, client = run.server.process.pid, servers.machine_busy_seconds(), time.process_time()
    ours = {p: proctree.cpu_seconds(p) or 0.0 for p in {pid, stub.server.process.pid}}
    began = time.perf_counter()
    batch = guarded(_closed_loop(run.target, run.chat, plan), timeout=plan.seconds + 60, expected=1)
    elapsed = time.perf_counter() - began
    used = {p: (proctree.cpu_seconds(p) or 0.0) - before for p, before in ours.items()}
    merge(run.tally("c16"), batch)
    load = run.load
    load["seconds"] = load.get("seconds", 0.0) + elapsed
    load["server_cpu_s"] = load.get("server_cpu_s", 0.0) + used[pid]
    busy_after = servers.machine_busy_seconds()
    if busy is not None and busy_after is not None:
        other = busy_after - busy - sum(used.values()) - (time.process_time() - client)
        load["other_cpu_s"] = load.get("other_cpu_s", 0.0) + max(0.0, other)


def warm_up(running: list[Running], plan: Plan) -> None:
    for run in running:
        for raw in (run.chat, run.stream):
            merge(
                run.tally("warmup"),
                guarded(httpload.sequential(run.target, raw, plan.warmup), 120, plan.warmup),
            )
        guarded(_closed_loop(run.target, run.chat, replace(plan, seconds=0.5)), 60, 1)


def rounds(running: list[Running], plan: Plan) -> None:
    """Interleaved: every target takes its turn in each phase of each round."""
    stub = running[0]
    for number in range(plan.rounds):
        print(f"round {number + 1}/{plan.rounds}", file=sys.stderr, flush=True)
        for run in running:
            sequential_batch(run, run.chat, "c1", max(1, plan.requests // plan.rounds))
        for run in running:
            sequential_batch(run, run.stream, "stream", max(1, plan.stream_requests // plan.rounds))
        for run in running:
            throughput_batch(run, plan, stub)


def rss_mb(pid: int) -> float | None:
    rss = proctree.rss_bytes(pid)
    return None if rss is None else round(rss / peers_report.MB, 1)


def target_stats(run: Running) -> Stats:
    stats: Stats = {name: peers_report.latency_stats(run.tally(name)) for name in ("c1", "stream")}
    c16, load = peers_report.latency_stats(run.tally("c16")), run.load
    seconds = load.get("seconds", 0.0)
    count = c16["requests"]
    c16["seconds"] = round(seconds, 2)
    c16["rps"] = round(count / seconds, 1) if seconds and count else float("nan")
    c16["cpu_us_per_request"] = (
        round(load.get("server_cpu_s", 0.0) / count * 1e6, 1) if count else float("nan")
    )
    c16["other_processes_cpu_share"] = round(load.get("other_cpu_s", 0.0) / seconds, 2) if seconds else None
    stats["c16"] = c16
    warmup = run.tally("warmup")
    stats["warmup"] = {
        "requests": len(warmup.total),
        "errors": warmup.errors,
        "last_error": warmup.last_error,
    }
    stats["process"] = {"rss_mb": rss_mb(run.server.process.pid), "ready_s": run.ready_s}
    return stats
