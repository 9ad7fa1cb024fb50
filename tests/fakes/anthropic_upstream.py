"""A scripted Anthropic Messages upstream (raw ASGI), driven by the same ``Script`` as FakeOpenAI."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from .openai_upstream import Receive, Script, Send, _body, _send_json, lifespan


class FakeAnthropic:
    def __init__(self) -> None:
        self.script = Script()
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.queue: list[Script] = []  # per-request scripts, consumed in order before falling back to script
        self.thinking: tuple[str, str] | None = None  # (text, signature): a thinking block before the text
        self.input_tokens = 42  # what /v1/messages/count_tokens answers
        self.native: list[dict[str, Any]] = []  # whole blocks (server tool use, results) before the text
        self.native_queue: list[list[dict[str, Any]]] = []  # per-request native blocks, like ``queue``
        self.count_status = 200  # anything else: /v1/messages/count_tokens answers that error
        self.container: dict[str, Any] | None = None  # the code execution container the answer reports

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
        if scope["path"].endswith("/count_tokens"):
            error = {"type": "error", "error": {"type": "not_found_error", "message": "no such endpoint"}}
            answer = {"input_tokens": self.input_tokens} if self.count_status == 200 else error
            await _send_json(send, self.count_status, answer, {})
            return
        script = self.queue.pop(0) if self.queue else self.script
        if script.initial_delay:
            await asyncio.sleep(script.initial_delay)
        if script.status != 200:
            kind = {429: "rate_limit_error", 401: "authentication_error", 529: "overloaded_error"}
            payload = {
                "type": "error",
                "error": {
                    "type": kind.get(script.status, "invalid_request_error"),
                    "message": script.error_message,
                },
            }
            await _send_json(send, script.status, payload, script.headers)
        elif body.get("stream"):
            await self._stream(send, body, script, self._native())
        else:
            await _send_json(send, 200, self._message(body, script, self._native()), script.headers)

    def _native(self) -> list[dict[str, Any]]:
        return self.native_queue.pop(0) if self.native_queue else self.native

    @staticmethod
    def _stop(script: Script) -> str:
        return script.finish_reason or ("tool_use" if script.tool_calls else "end_turn")

    def _message(self, body: dict[str, Any], script: Script, native: list[dict[str, Any]]) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if self.thinking:
            content.append({"type": "thinking", "thinking": self.thinking[0], "signature": self.thinking[1]})
        content += native
        if script.texts:
            content.append({"type": "text", "text": "".join(script.texts)})
        for call in script.tool_calls:
            content.append(
                {
                    "type": "tool_use",
                    "id": call["id"],
                    "name": call["name"],
                    "input": json.loads("".join(call["arguments"])),
                }
            )
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": script.model or body["model"],
            "content": content,
            "stop_reason": self._stop(script),
            "stop_sequence": None,
            "usage": self._usage(script),
            "container": self.container,
        }

    @staticmethod
    def _usage(script: Script) -> dict[str, Any]:
        """The input side is reported in message_start, the output count in message_delta."""
        return script.usage_override or {"input_tokens": 13, "output_tokens": len(script.texts)}

    @classmethod
    def _delta_usage(cls, script: Script) -> dict[str, Any]:
        """message_delta's usage: the output count, and the server tools' counts (cumulative, as
        Anthropic sends them there and not in message_start)."""
        usage = cls._usage(script)
        server = {"server_tool_use": usage["server_tool_use"]} if "server_tool_use" in usage else {}
        return {"output_tokens": usage["output_tokens"], **server}

    async def _stream(
        self, send: Send, body: dict[str, Any], script: Script, native: list[dict[str, Any]]
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )

        async def event(name: str, payload: dict[str, Any], more: bool = True) -> None:
            data = f"event: {name}\ndata: {json.dumps({'type': name, **payload})}\n\n".encode()
            await send({"type": "http.response.body", "body": data, "more_body": more})
            if script.delay and more:
                await asyncio.sleep(script.delay)

        message = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": script.model or body["model"],
            "stop_reason": None,
            "usage": {**self._usage(script), "output_tokens": 1, "server_tool_use": None},
        }
        await event("message_start", {"message": message})
        index = 0
        if self.thinking:
            block = {"type": "thinking", "thinking": "", "signature": ""}
            await event("content_block_start", {"index": 0, "content_block": block})
            for delta in (
                {"type": "thinking_delta", "thinking": self.thinking[0]},
                {"type": "signature_delta", "signature": self.thinking[1]},
            ):
                await event("content_block_delta", {"index": 0, "delta": delta})
            await event("content_block_stop", {"index": 0})
            index = 1
        for block in native:  # a server tool call streams its input; a result comes whole
            start = {**block, "input": {}} if "input" in block else block
            await event("content_block_start", {"index": index, "content_block": start})
            if "input" in block:
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
                await event("content_block_delta", {"index": index, "delta": delta})
            await event("content_block_stop", {"index": index})
            index += 1
        if script.texts:
            await event(
                "content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}}
            )
            await event("ping", {})
            for n, text in enumerate(script.texts):
                if script.fail_after is not None and n >= script.fail_after:
                    error = {"type": "overloaded_error", "message": script.error_message}
                    await event("error", {"error": error}, more=False)
                    return
                if script.cut_after is not None and n >= script.cut_after:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                delta = {"type": "text_delta", "text": text}
                await event("content_block_delta", {"index": index, "delta": delta})
            await event("content_block_stop", {"index": index})
            index += 1
        for offset, call in enumerate(script.tool_calls):
            block = {"type": "tool_use", "id": call["id"], "name": call["name"], "input": {}}
            await event("content_block_start", {"index": index + offset, "content_block": block})
            for piece in call["arguments"]:
                delta = {"type": "input_json_delta", "partial_json": piece}
                await event("content_block_delta", {"index": index + offset, "delta": delta})
            await event("content_block_stop", {"index": index + offset})
        await event(
            "message_delta",
            {
                "delta": {
                    "stop_reason": self._stop(script),
                    "stop_sequence": None,
                    "container": self.container,
                },
                "usage": self._delta_usage(script),
            },
        )
        await event("message_stop", {}, more=False)
