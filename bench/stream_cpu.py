"""The gateway's CPU time per streamed chunk, without a model: long answers from a stub upstream.

    python bench/stream_cpu.py                        # 5 answers x 2,000 chunks, /v1/chat/completions
    python bench/stream_cpu.py --profile prof.out     # the gateway under cProfile; top entries printed

The upstream (this file, ``--serve PORT``) streams ``--chunks`` one-word OpenAI ``chat.completion.chunk``
events, one HTTP chunk each, ``--interval-ms`` apart (a model's pace: one upstream read per event), as
llama-server does. The gateway is the chat Lambda's entry under uvicorn
with full accounting on SQLite (a key, a budget, the audit chain). Reported: the gateway process's CPU
seconds (user + system, /proc) over the measured answers, divided by the chunks it streamed -- for
``/v1/chat/completions`` (OpenAI client, OpenAI-compatible upstream) and ``/v1/messages`` (Anthropic
client). Every CPU µs per chunk here is taken from the model when both share the cores (issue 14).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers
from overhead import profile_summary, provision_key

MODEL = "smollm2"
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


def _event(body: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def upstream_events(chunks: int) -> list[bytes]:
    def chunk(delta: dict[str, Any] | None, finish: str | None = None) -> dict[str, Any]:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        return {
            "id": "chatcmpl-s",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": MODEL,
            "choices": choices,
        }

    usage = {"prompt_tokens": 20, "completion_tokens": chunks, "total_tokens": 20 + chunks}
    events = [_event(chunk({"role": "assistant", "content": ""}))]
    events += [_event(chunk({"content": f" w{i % 97}"})) for i in range(chunks)]
    events += [_event(chunk({}, "length")), _event(chunk(None) | {"usage": usage}), b"data: [DONE]\n\n"]
    return events


def upstream_app(chunks: int, interval: float) -> Callable[[dict[str, Any], Receive, Send], Awaitable[None]]:
    events = upstream_events(chunks)

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["method"] != "POST":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        while (await receive()).get("more_body", False):
            pass
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for event in events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
            if interval:
                await asyncio.sleep(interval)  # paced like a model's decode: one read per event
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


async def stream_once(url: str, key: str, messages_api: bool) -> int:
    """Stream one answer; the number of content deltas the client saw."""
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "go"}], "stream": True}
    if messages_api:
        body["max_tokens"] = 100000
    else:
        body["stream_options"] = {"include_usage": True}
    seen = 0
    marker = '"text_delta"' if messages_api else '"content"'
    async with (
        httpx.AsyncClient(timeout=120) as client,
        client.stream("POST", url, json=body, headers={"Authorization": f"Bearer {key}"}) as response,
    ):
        if response.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {response.status_code}: {(await response.aread())[:300]!r}")
        async for line in response.aiter_lines():
            seen += line.startswith("data: ") and marker in line
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--answers", type=int, default=5)
    parser.add_argument("--interval-ms", type=float, default=1.0, help="upstream pause between events")
    parser.add_argument("--profile", type=Path, help="run the gateway under cProfile, write here")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the upstream's own process
    args = parser.parse_args(argv)
    if args.serve:
        import uvicorn

        uvicorn.run(
            upstream_app(args.chunks, args.interval_ms / 1000),
            host=servers.HOST,
            port=args.serve,
            log_level="warning",
        )
        return 0
    work = Path(tempfile.mkdtemp(prefix="tollgate-streamcpu-"))
    up_port, gw_port = servers.free_port(), servers.free_port()
    up_argv = [sys.executable, __file__, "--serve", str(up_port), "--chunks", str(args.chunks)]
    up_argv += ["--interval-ms", str(args.interval_ms)]
    upstream = servers.Server(
        "upstream", up_argv, servers.gateway_env(up_port, work, "INFO"), work / "up.log", up_port
    )
    env = servers.gateway_env(up_port, work, "INFO")
    key = provision_key(env)
    gw_argv = servers.gateway_argv(gw_port, "tollgate.app:create_app", args.profile)
    gateway = servers.Server("tollgate", gw_argv, env, work / "gateway.log", gw_port)
    base = f"http://{servers.HOST}:{gw_port}"
    with servers.running(upstream, "/health"), servers.running(gateway, "/health"):
        for path, messages_api in (("/v1/chat/completions", False), ("/v1/messages", True)):
            asyncio.run(stream_once(base + path, key, messages_api))  # warm
            before = gateway.cpu_seconds() or 0.0
            seen = sum(asyncio.run(stream_once(base + path, key, messages_api)) for _ in range(args.answers))
            used = (gateway.cpu_seconds() or 0.0) - before
            if seen < args.answers * args.chunks:
                raise RuntimeError(f"{path}: the client saw {seen} deltas of {args.answers * args.chunks}")
            per_chunk = used / (args.answers * args.chunks) * 1e6
            print(
                f"{path:22s} {args.answers} x {args.chunks} chunks:"
                f" gateway CPU {used:.2f} s, {per_chunk:.1f} µs/chunk"
            )
    if args.profile:
        for row in profile_summary(args.profile, 20):
            print(f"  {row['tottime_s']:8.3f} s  {row['calls']:8d}  {row['function']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
