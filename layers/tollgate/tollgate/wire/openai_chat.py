"""The OpenAI Chat Completions wire format (POST /v1/chat/completions): the ``chat.completion`` object,
the ``chat.completion.chunk`` stream (``OpenAIChatEncoder``) ending in ``data: [DONE]``, and the OpenAI
error object, which every route but /v1/messages answers errors with.

The request needs no translation: the internal request is the OpenAI one (``schemas.openai``).
Pure functions only; the HTTP handler lives in ``api.chat``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from ..errors import TollgateError
from ..lifecycle import Outcome
from ..providers.base import ChatCall, Chunk, Finish, ResponseMeta, TextDelta, ToolCallDelta, Usage
from ..streaming import ResponseBuilder

DONE = b"data: [DONE]\n\n"
_encode = msgspec.json.encode


def sse(payload: dict[str, Any]) -> bytes:
    """One data-only SSE frame (OpenAI's streams: chat chunks and legacy completions)."""
    return b"data: " + _encode(payload) + b"\n\n"


def usage_body(usage: Usage) -> dict[str, Any]:
    """OpenAI usage: the cached and reasoning parts in the details objects, as OpenAI sends them (cache
    writes, which OpenAI does not report, as OpenRouter does: ``prompt_tokens_details.cache_write_tokens``,
    when there are any). ``prompt_tokens`` includes the cached and written tokens."""
    prompt_details = {"cached_tokens": usage.cached_tokens}
    if usage.cache_write_tokens:
        prompt_details["cache_write_tokens"] = usage.cache_write_tokens
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


class ChunkFormatter:
    """Builds OpenAI ``chat.completion.chunk`` objects for one stream."""

    def __init__(self, call: ChatCall) -> None:
        self.id = f"chatcmpl-{call.request_id}"
        self.created = int(time.time())
        self.model = call.model

    def _chunk(self, delta: dict[str, Any] | None, finish: str | None = None) -> dict[str, Any]:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def role(self) -> dict[str, Any]:
        return self._chunk({"role": "assistant", "content": ""})

    def format(self, chunk: Chunk) -> dict[str, Any] | None:
        if isinstance(chunk, TextDelta):
            return self._chunk({"content": chunk.text})
        if isinstance(chunk, ToolCallDelta):
            call: dict[str, Any] = {"index": chunk.index, "function": {"arguments": chunk.arguments}}
            if chunk.id:
                call["id"] = chunk.id
                call["type"] = "function"
            if chunk.name:
                call["function"]["name"] = chunk.name
            return self._chunk({"tool_calls": [call]})
        if isinstance(chunk, Finish):
            return self._chunk({}, chunk.reason)
        if isinstance(chunk, ResponseMeta) and chunk.model:
            self.model = chunk.model
        return None

    def marker(self, info: dict[str, Any]) -> dict[str, Any]:
        """A chunk without choices carrying a ``tollgate`` object (an agent loop's turn boundary)."""
        body = self._chunk(None)
        body["tollgate"] = info
        return body

    def usage(self, usage: Usage, extension: dict[str, Any]) -> dict[str, Any]:
        body = self._chunk(None)
        body["usage"] = usage_body(usage)
        if extension:
            body["tollgate"] = extension
        return body


def completion(builder: ResponseBuilder, usage: Usage, extension: dict[str, Any]) -> dict[str, Any]:
    """A whole answer as a ``chat.completion`` object; tollgate's cost in a ``tollgate`` object."""
    body: dict[str, Any] = {
        "id": f"chatcmpl-{builder.response_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": builder.model,
        "choices": [
            {
                "index": 0,
                "message": builder.message(),
                "finish_reason": builder.finish or "stop",
                "logprobs": None,
            }
        ],
        "usage": usage_body(usage),
    }
    if extension:
        body["tollgate"] = extension
    return body


def render(builder: ResponseBuilder, outcome: Outcome, extension: dict[str, Any]) -> dict[str, Any]:
    return completion(builder, outcome.usage or builder.final_usage(), extension)


def error_body(error_type: str, error: TollgateError) -> dict[str, Any]:
    """The OpenAI error object (``error_type`` from the HTTP status table in ``api.errors``)."""
    return {"error": {"message": error.message, "type": error_type, "param": error.param, "code": error.code}}


class OpenAIChatEncoder:
    """``chat.completion.chunk`` frames, the optional usage chunk, then ``data: [DONE]``."""

    def __init__(self, call: ChatCall, render_error: Callable[[TollgateError], dict[str, Any]]) -> None:
        self.call = call
        self.formatter = ChunkFormatter(call)
        self.render_error = render_error

    def start(self) -> list[bytes]:
        return [sse(self.formatter.role())]

    def chunk(self, chunk: Chunk) -> list[bytes]:
        frame = self.formatter.format(chunk)
        return [] if frame is None else [sse(frame)]

    def end(self, builder: ResponseBuilder, outcome: Outcome, extension: dict[str, Any]) -> list[bytes]:
        frames = [] if builder.finish_seen else self.chunk(Finish("stop"))
        if self.call.request.include_usage:
            frames.append(sse(self.formatter.usage(outcome.usage or builder.final_usage(), extension)))
        return [*frames, DONE]

    def error(self, error: TollgateError) -> list[bytes]:
        return [sse(self.render_error(error))]

    def marker(self, info: dict[str, Any]) -> list[bytes]:
        return [sse(self.formatter.marker(info))]
