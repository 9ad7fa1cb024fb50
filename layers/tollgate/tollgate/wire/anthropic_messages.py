"""The Anthropic Messages wire format as tollgate *serves* it (POST /v1/messages).

A Messages request is translated to the internal ``ChatCompletionRequest`` (``to_chat``, in
``anthropic_messages_request``), goes through
the one pipeline every model endpoint uses (routing, budget, session, audit), and the provider's typed
chunks come back as an Anthropic ``message`` object (``render_message``) or as Anthropic's SSE event
sequence (``AnthropicEncoder``). An Anthropic upstream behind the gateway is served through the same
translation: request -> internal request -> the Anthropic upstream adapter (``providers.anthropic``) ->
chunks -> Anthropic events; there is no second, pass-through path to keep in step.

Pure functions only (the error body included); the HTTP handler lives in ``api.messages``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import msgspec

from ..errors import TollgateError
from ..json_depth import too_deep
from ..lifecycle import Outcome
from ..providers.base import (
    ChatCall,
    Chunk,
    Finish,
    NativeBlock,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    Usage,
)
from ..streaming import ResponseBuilder
from ..tokens import estimate_prompt_tokens

logger = logging.getLogger("tollgate.wire.anthropic_messages")

# OpenAI finish reason -> Anthropic stop reason (the inverse of anthropic_tables.STOP_REASONS)
FINISH_TO_STOP: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
# tollgate's HTTP status -> Anthropic error type
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}

Block = dict[str, Any]


# --- response: internal -> Anthropic ------------------------------------------------------------


def stop_reason(finish: str | None, has_tool_calls: bool) -> str:
    """Some upstreams finish a tool call with ``stop``: a turn that calls tools ends in ``tool_use``."""
    if has_tool_calls and finish in (None, "stop"):
        return "tool_use"
    return FINISH_TO_STOP.get(finish or "stop", "end_turn")


def tool_id(call_id: str | None, request_id: str, index: int) -> str:
    return call_id or f"toolu_{request_id}_{index}"


def tool_input(arguments: str, name: str) -> dict[str, Any]:
    """The collected arguments JSON as an object; anything else becomes ``{}`` (and a warning)."""
    try:
        value = None if too_deep(arguments) else (json.loads(arguments) if arguments.strip() else {})
    except ValueError:
        value = None
    if not isinstance(value, dict):
        logger.warning("tool call %s: arguments are not a JSON object; sent as {}", name)
        return {}
    return value


def usage_body(usage: Usage) -> dict[str, Any]:
    """Anthropic usage: ``input_tokens`` leaves out the cache reads and writes, which have fields of their
    own (tollgate's ``prompt_tokens`` holds all three); the writes split by TTL in ``cache_creation`` when
    some had a 1-hour TTL; the web searches a server tool ran in ``server_tool_use``. Anthropic reports no
    reasoning count."""
    body: dict[str, Any] = {
        "input_tokens": usage.uncached_prompt_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
    }
    if usage.cache_write_1h_tokens:
        one_hour = min(usage.cache_write_1h_tokens, usage.cache_write_tokens)
        body["cache_creation"] = {
            "ephemeral_5m_input_tokens": usage.cache_write_tokens - one_hour,
            "ephemeral_1h_input_tokens": one_hour,
        }
    if usage.web_search_requests:
        body["server_tool_use"] = {"web_search_requests": usage.web_search_requests}
    return body


def anthropic_blocks(pieces: list[ThinkingDelta | NativeBlock]) -> list[Block]:
    """Thinking deltas and native blocks -> whole blocks, in the order they began (signatures unchanged)."""
    blocks: list[Block] = []
    thinking: dict[int, Block] = {}
    for piece in pieces:
        if isinstance(piece, NativeBlock):
            blocks.append(piece.block)
        elif piece.redacted is not None:
            blocks.append({"type": "redacted_thinking", "data": piece.redacted})
        else:
            if piece.index not in thinking:
                thinking[piece.index] = {"type": "thinking", "thinking": "", "signature": ""}
                blocks.append(thinking[piece.index])
            thinking[piece.index]["thinking"] += piece.text
            thinking[piece.index]["signature"] += piece.signature
    return blocks


def content_blocks(builder: ResponseBuilder) -> list[Block]:
    blocks: list[Block] = anthropic_blocks(builder.anthropic_blocks)
    if text := "".join(builder.text):
        blocks.append({"type": "text", "text": text})
    for index in sorted(builder.tool_calls):
        call = builder.tool_calls[index]
        name = call["function"]["name"]
        blocks.append(
            {
                "type": "tool_use",
                "id": tool_id(call["id"], builder.call.request_id, index),
                "name": name,
                "input": tool_input(call["function"]["arguments"], name),
            }
        )
    return blocks


def render_message(builder: ResponseBuilder, outcome: Outcome, extension: dict[str, Any]) -> dict[str, Any]:
    """A whole answer as an Anthropic ``message`` object; tollgate's cost in a ``tollgate`` object."""
    usage = outcome.usage or builder.final_usage()
    body: dict[str, Any] = {
        "id": f"msg_{builder.call.request_id}",
        "type": "message",
        "role": "assistant",
        "model": builder.model,
        "content": content_blocks(builder),
        "stop_reason": stop_reason(builder.finish, bool(builder.tool_calls)),
        "stop_sequence": None,
        "usage": usage_body(usage),
    }
    if builder.container is not None:  # the code execution container, to name in a later request
        body["container"] = builder.container
    if extension:
        body["tollgate"] = extension
    return body


def error_body(status: int, message: str) -> dict[str, Any]:
    """Anthropic's error shape for a tollgate HTTP status."""
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}


# --- streaming: chunks -> Anthropic events ------------------------------------------------------


def event(name: str, payload: dict[str, Any]) -> bytes:
    """One SSE frame: ``event: <type>`` and the payload (which carries the same ``type``)."""
    return b"event: " + name.encode() + b"\ndata: " + msgspec.json.encode({"type": name, **payload}) + b"\n\n"


class AnthropicEncoder:
    """Anthropic's event sequence for one stream.

    Blocks open in the order content arrives (text first when the upstream starts with text), each is
    closed before the next opens, and text after a tool call opens a new text block. A late argument
    piece for a tool block that is already closed goes to that block's index (the SDKs accumulate by
    index); OpenAI-style upstreams stream one tool call after another, so this is rare.
    """

    def __init__(self, call: ChatCall, render_error: Callable[[TollgateError], dict[str, Any]]) -> None:
        self.call = call
        self.render_error = render_error
        self.blocks = 0  # content blocks opened so far
        self.open: int | None = None  # the index of the open block
        self.text_block: int | None = None  # the open block, when it is a text block
        self.tool_blocks: dict[int, int] = {}  # tool call index -> block index
        self.thinking_blocks: dict[int, int] = {}  # thinking index -> block index
        self.finish: str | None = None

    def start(self) -> list[bytes]:
        messages = self.call.request.messages
        # an estimate (the upstream has not answered yet); message_delta carries the real counts
        usage = usage_body(Usage(estimate_prompt_tokens(m.text() for m in messages), 0))
        message: dict[str, Any] = {
            "id": f"msg_{self.call.request_id}",
            "type": "message",
            "role": "assistant",
            "model": self.call.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return [event("message_start", {"message": message})]

    def chunk(self, chunk: Chunk) -> list[bytes]:
        if isinstance(chunk, TextDelta):
            return self._text(chunk.text) if chunk.text else []
        if isinstance(chunk, ToolCallDelta):
            return self._tool(chunk)
        if isinstance(chunk, ThinkingDelta):
            return self._thinking(chunk)
        if isinstance(chunk, NativeBlock):
            return self._open(chunk.block)  # whole: closed when the next block opens, or at the end
        if isinstance(chunk, Finish):
            self.finish = chunk.reason
        return []

    def end(self, builder: ResponseBuilder, outcome: Outcome, extension: dict[str, Any]) -> list[bytes]:
        usage = outcome.usage or builder.final_usage()
        delta: dict[str, Any] = {
            "stop_reason": stop_reason(self.finish, bool(self.tool_blocks)),
            "stop_sequence": None,
        }
        if builder.container is not None:
            delta["container"] = builder.container
        payload: dict[str, Any] = {"delta": delta, "usage": usage_body(usage)}
        if extension:
            payload["tollgate"] = extension
        return [*self._close(), event("message_delta", payload), event("message_stop", {})]

    def error(self, error: TollgateError) -> list[bytes]:
        body = self.render_error(error)
        return [event("error", {"error": body["error"]})]

    def _close(self) -> list[bytes]:
        if self.open is None:
            return []
        frame = event("content_block_stop", {"index": self.open})
        self.open = self.text_block = None
        return [frame]

    def _open(self, block: Block) -> list[bytes]:
        frames = self._close()
        self.open = self.blocks
        self.blocks += 1
        return [*frames, event("content_block_start", {"index": self.open, "content_block": block})]

    def _text(self, text: str) -> list[bytes]:
        frames: list[bytes] = []
        if self.text_block is None:
            frames = self._open({"type": "text", "text": ""})
            self.text_block = self.open
        delta = {"type": "text_delta", "text": text}
        return [*frames, event("content_block_delta", {"index": self.text_block, "delta": delta})]

    def _tool(self, chunk: ToolCallDelta) -> list[bytes]:
        frames: list[bytes] = []
        if chunk.index not in self.tool_blocks:
            call_id = tool_id(chunk.id, self.call.request_id, chunk.index)
            block = {"type": "tool_use", "id": call_id, "name": chunk.name or "", "input": {}}
            frames = self._open(block)
            self.tool_blocks[chunk.index] = self.blocks - 1
        if not chunk.arguments:
            return frames
        delta = {"type": "input_json_delta", "partial_json": chunk.arguments}
        index = self.tool_blocks[chunk.index]
        return [*frames, event("content_block_delta", {"index": index, "delta": delta})]

    def _thinking(self, chunk: ThinkingDelta) -> list[bytes]:
        frames: list[bytes] = []
        if chunk.index not in self.thinking_blocks:
            block: Block = {"type": "thinking", "thinking": "", "signature": ""}
            if chunk.redacted is not None:
                block = {"type": "redacted_thinking", "data": chunk.redacted}
            frames = self._open(block)
            self.thinking_blocks[chunk.index] = self.blocks - 1
        index = self.thinking_blocks[chunk.index]
        if chunk.text:
            delta = {"type": "thinking_delta", "thinking": chunk.text}
            frames.append(event("content_block_delta", {"index": index, "delta": delta}))
        if chunk.signature:
            delta = {"type": "signature_delta", "signature": chunk.signature}
            frames.append(event("content_block_delta", {"index": index, "delta": delta}))
        return frames
