"""A scripted OpenAI-compatible upstream (raw ASGI): SSE streams with pauses, tool calls, errors.

fake = FakeOpenAI(); fake.script = Script(texts=["Hel", "lo"], delay=0.2)
with ServerThread(fake) as server: ...   # base URL: server.url (+ "/v1" for openai-style)
fake.requests -> [(path, headers, json_body), ...]
Legacy /v1/completions and /v1/embeddings are answered from the same script (``openai_extra``).
fake.enqueue(Script(...), Script(...))   # optional: one script per request, in order, then fake.script
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

Send = Any
Receive = Any


@dataclass
class Script:
    texts: list[str] = field(default_factory=lambda: ["Hello", " from", " fake"])
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {"id","name","arguments":[pieces]}
    delay: float = 0.0  # seconds between streamed events
    initial_delay: float = 0.0  # seconds before the response starts (headers included)
    status: int = 200
    error_message: str = "upstream says no"
    headers: dict[str, str] = field(default_factory=dict)
    usage: bool = True  # report usage (llama-cpp-python's server does not when streaming)
    usage_override: dict[str, Any] | None = None  # the usage object to report (OpenAI's or Anthropic's)
    model: str | None = None
    fail_after: int | None = None  # stream: send this many content events, then an error event
    cut_after: int | None = None  # stream (FakeAnthropic): this many text deltas, then the body just ends
    finish_reason: str | None = None


async def lifespan(receive: Receive, send: Send) -> None:
    """Answer the ASGI lifespan protocol (nothing to start or stop)."""
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class FakeOpenAI:
    def __init__(self) -> None:
        self.script = Script()
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.client_ports: list[int] = []  # the peer port of each request: equal ports = a reused connection
        self.queue: list[Script] = []  # per-request scripts, consumed in order before falling back to script

    def enqueue(self, *scripts: Script) -> None:
        self.queue.extend(scripts)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        raw = await _body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        body = json.loads(raw) if raw else {}
        self.requests.append((scope["path"], headers, body))
        self.client_ports.append(scope["client"][1])
        script = self.queue.pop(0) if self.queue else self.script
        if script.initial_delay:
            await asyncio.sleep(script.initial_delay)
        if script.status != 200:
            payload = {"error": {"message": script.error_message, "type": "invalid_request_error"}}
            await _send_json(send, script.status, payload, script.headers)
        elif openai_extra.handles(scope["path"]):
            await openai_extra.answer(send, scope["path"], body, script)
        elif body.get("stream"):
            await self._stream(send, body, script)
        else:
            await _send_json(send, 200, self._completion(body, script), script.headers)

    def _completion(self, body: dict[str, Any], script: Script) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(script.texts) or None}
        if script.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": "".join(c["arguments"])},
                }
                for c in script.tool_calls
            ]
        result: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1,
            "model": script.model or body.get("model"),
            "choices": [{"index": 0, "message": message, "finish_reason": self._finish(script)}],
        }
        if script.usage:
            result["usage"] = _usage(script)
        return result

    @staticmethod
    def _finish(script: Script) -> str:
        return script.finish_reason or ("tool_calls" if script.tool_calls else "stop")

    async def _stream(self, send: Send, body: dict[str, Any], script: Script) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        model = script.model or body.get("model")

        async def event(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> None:
            choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
            chunk = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": model,
                "choices": choices,
                **extra,
            }
            await send(
                {
                    "type": "http.response.body",
                    "body": f"data: {json.dumps(chunk)}\n\n".encode(),
                    "more_body": True,
                }
            )
            if script.delay:
                await asyncio.sleep(script.delay)

        await event({"role": "assistant", "content": ""})
        for n, text in enumerate(script.texts):
            if script.fail_after is not None and n >= script.fail_after:
                error = {"error": {"message": script.error_message, "type": "server_error"}}
                await send(
                    {
                        "type": "http.response.body",
                        "body": f"data: {json.dumps(error)}\n\n".encode(),
                        "more_body": False,
                    }
                )
                return
            await event({"content": text})
        for index, call in enumerate(script.tool_calls):
            for n, piece in enumerate(call["arguments"]):
                start = {"id": call["id"], "type": "function"} if n == 0 else {}
                function = {"name": call["name"], "arguments": piece} if n == 0 else {"arguments": piece}
                await event({"tool_calls": [{"index": index, **start, "function": function}]})
        await event({}, self._finish(script))
        include = (body.get("stream_options") or {}).get("include_usage")
        if script.usage and include:
            await event(None, usage=_usage(script))
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


def _usage(script: Script) -> dict[str, Any]:
    if script.usage_override is not None:
        return script.usage_override
    return {
        "prompt_tokens": 11,
        "completion_tokens": len(script.texts),
        "total_tokens": 11 + len(script.texts),
    }


async def _send_json(send: Send, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
    raw = json.dumps(payload).encode()
    header_list = [(b"content-type", b"application/json")] + [
        (k.encode(), v.encode()) for k, v in headers.items()
    ]
    await send({"type": "http.response.start", "status": status, "headers": header_list})
    await send({"type": "http.response.body", "body": raw})


from . import openai_extra  # noqa: E402  (it imports this module's helpers)
