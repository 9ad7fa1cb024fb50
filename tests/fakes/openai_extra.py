"""FakeOpenAI's other routes: legacy ``/completions`` and ``/embeddings``, answered from its Script.

Embeddings are deterministic per text (``fake_embedding``), float32-exact, so a base64 round trip through
the gateway and the SDK gives back exactly the floats this fake sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from typing import Any

from .openai_upstream import Script, Send, _send_json

DIMENSIONS = 8


def handles(path: str) -> bool:
    return path.endswith("/embeddings") or (
        path.endswith("/completions") and not path.endswith("/chat/completions")
    )


def fake_embedding(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    """Multiples of 1/64 in [-2, 2): exact in float32."""
    raw = text.encode() or b"\0"
    return [((raw[i % len(raw)] * (i + 7)) % 256 - 128) / 64 for i in range(dimensions)]


def fake_tokens(text: str) -> int:
    return len(text.split()) or 1


async def answer(send: Send, path: str, body: dict[str, Any], script: Script) -> None:
    if path.endswith("/embeddings"):
        await _send_json(send, 200, embeddings(body), script.headers)
    elif body.get("stream"):
        await _stream_completion(send, body, script)
    else:
        await _send_json(send, 200, completion(body, script), script.headers)


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    vectors = [fake_embedding(text, body.get("dimensions") or DIMENSIONS) for text in inputs]
    encode = body.get("encoding_format") == "base64"
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if encode else v,
        }
        for i, v in enumerate(vectors)
    ]
    tokens = sum(fake_tokens(text) for text in inputs)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": body.get("model"), "usage": usage}


def _usage(script: Script) -> dict[str, Any]:
    if script.usage_override is not None:
        return script.usage_override
    return {
        "prompt_tokens": 11,
        "completion_tokens": len(script.texts),
        "total_tokens": 11 + len(script.texts),
    }


def completion(body: dict[str, Any], script: Script) -> dict[str, Any]:
    choice = {
        "text": "".join(script.texts),
        "index": 0,
        "logprobs": None,
        "finish_reason": script.finish_reason or "stop",
    }
    result: dict[str, Any] = {
        "id": "cmpl-fake",
        "object": "text_completion",
        "created": 1,
        "model": script.model or body.get("model"),
        "choices": [choice],
    }
    if script.usage:
        result["usage"] = _usage(script)
    return result


async def _stream_completion(send: Send, body: dict[str, Any], script: Script) -> None:
    headers = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    model = script.model or body.get("model")

    async def event(payload: dict[str, Any], more: bool = True) -> None:
        data = f"data: {json.dumps(payload)}\n\n".encode()
        await send({"type": "http.response.body", "body": data, "more_body": more})
        if script.delay:
            await asyncio.sleep(script.delay)

    def frame(text: str | None, finish: str | None = None) -> dict[str, Any]:
        choices = (
            [] if text is None else [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}]
        )
        return {
            "id": "cmpl-fake",
            "object": "text_completion",
            "created": 1,
            "model": model,
            "choices": choices,
        }

    for n, text in enumerate(script.texts):
        if script.fail_after is not None and n >= script.fail_after:
            await event({"error": {"message": script.error_message, "type": "server_error"}}, more=False)
            return
        await event(frame(text))
    await event(frame("", script.finish_reason or "stop"))
    if script.usage and (body.get("stream_options") or {}).get("include_usage"):
        await event(frame(None) | {"usage": _usage(script)})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
