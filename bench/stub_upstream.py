"""A fast, fixed-answer OpenAI-compatible upstream for benchmarks (raw ASGI, no framework).

``POST <any path>`` answers a fixed ``chat.completion``; with ``"stream": true`` in the body it answers a
fixed SSE stream (role, 8 content chunks, finish, usage, ``[DONE]``), one HTTP chunk per event.
``GET <any path>`` answers ``ok`` (readiness probe). ``--stream-chunks N --stream-interval-ms T``: streams
of N content chunks, one every T ms, as a model decodes (``bench/stream_cpu.py``).

Run: ``python bench/stub_upstream.py --port 8901``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MODEL = "gpt-4o-mini-2024-07-18"
WORDS = ["Hello", " from", " the", " stub", " upstream", ",", " have", " fun."]
USAGE = {"prompt_tokens": 9, "completion_tokens": len(WORDS), "total_tokens": 9 + len(WORDS)}


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


COMPLETION = _json(
    {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 1700000000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(WORDS)},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": USAGE,
    }
)


def _chunk(
    delta: dict[str, Any] | None, finish: str | None = None, usage: dict[str, int] | None = None
) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": MODEL,
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    return b"data: " + _json(body) + b"\n\n"


JSON_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(COMPLETION)).encode()),
]
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def long_stream(chunks: int) -> list[bytes]:
    """A stream of ``chunks`` content chunks (the words over and over), then finish, usage, ``[DONE]``."""
    usage = {"prompt_tokens": 9, "completion_tokens": chunks, "total_tokens": 9 + chunks}
    return [
        _chunk({"role": "assistant", "content": ""}),
        *(_chunk({"content": WORDS[i % len(WORDS)]}) for i in range(chunks)),
        _chunk({}, "stop"),
        _chunk(None, usage=usage),
        b"data: [DONE]\n\n",
    ]


STREAM_EVENTS = long_stream(len(WORDS))  # the default answer: each word once


class Pace:
    """What a streamed answer is made of, and the pause between its events (a model's decode time)."""

    events: list[bytes] = STREAM_EVENTS
    interval = 0.0


async def _send_stream(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    for event in Pace.events:
        await send({"type": "http.response.body", "body": event, "more_body": True})
        if Pace.interval:
            await asyncio.sleep(Pace.interval)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["method"] != "POST":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    body = await _read_body(receive)
    # a substring test, not a JSON parse: the stub must cost as little as possible
    if b'"stream":true' in body.replace(b" ", b""):
        await _send_stream(send)
        return
    await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": COMPLETION})


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stream-chunks", type=int, default=0, help="content chunks per stream (default 8)")
    parser.add_argument("--stream-interval-ms", type=float, default=0.0, help="pause after each event")
    args = parser.parse_args()
    if args.stream_chunks:
        Pace.events = long_stream(args.stream_chunks)
    Pace.interval = args.stream_interval_ms / 1000
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, workers=1)


if __name__ == "__main__":
    main()
