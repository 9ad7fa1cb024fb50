"""Anthropic Messages answers -> tollgate's typed chunks: a whole response (``parse_response``) or a stream
(``StreamParser``, one per call; ``parse_stream``). Stop reasons and error types map by tables; usage
counts the cache reads and writes as prompt tokens, as OpenAI's ``prompt_tokens`` does."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from ..anthropic_tables import STOP_REASONS
from ..errors import (
    TollgateError,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .anthropic_native import NativeBlocks, thinking_chunk
from .base import (
    Chunk,
    ContainerInfo,
    Finish,
    NativeBlock,
    ResponseMeta,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    Usage,
    token_count,
)
from .http_errors import MAX_MESSAGE, decode_upstream_json
from .sse import SSEvent

ERROR_TYPES: dict[str, type[TollgateError]] = {  # Anthropic error ``type`` -> tollgate error
    "overloaded_error": UpstreamUnavailable,
    "rate_limit_error": UpstreamRateLimited,
    "authentication_error": UpstreamAuthError,
    "permission_error": UpstreamAuthError,
    "invalid_request_error": UpstreamBadRequest,
    "not_found_error": UpstreamBadRequest,
    "request_too_large": UpstreamBadRequest,
    "timeout_error": UpstreamTimeout,
}  # anything else (api_error, ...) is an UpstreamError

# Anthropic's input_tokens leaves out the cache writes and reads; tollgate's prompt_tokens is all three
_CACHE_READ, _CACHE_WRITE = "cache_read_input_tokens", "cache_creation_input_tokens"
_PROMPT_USAGE_FIELDS = ("input_tokens", _CACHE_WRITE, _CACHE_READ)


def _finish(reason: Any) -> Finish | None:
    if not reason:
        return None
    return Finish(STOP_REASONS.get(str(reason), "stop"))


def _prompt_tokens(usage: dict[str, Any]) -> int:
    """Input tokens, cache writes and cache reads included (all of them are billed as prompt)."""
    return sum(token_count(usage.get(name)) for name in _PROMPT_USAGE_FIELDS)


def usage_of(usage: dict[str, Any]) -> Usage:
    """A Messages ``usage`` object -> tollgate's (prompt tokens with the cache reads and writes in them;
    the writes' 1-hour part from ``cache_creation.ephemeral_1h_input_tokens``, capped at the writes; the
    web searches from ``server_tool_use.web_search_requests``)."""
    written = token_count(usage.get(_CACHE_WRITE))
    creation = usage.get("cache_creation")
    one_hour = token_count(creation.get("ephemeral_1h_input_tokens")) if isinstance(creation, dict) else 0
    server = usage.get("server_tool_use")
    searches = token_count(server.get("web_search_requests")) if isinstance(server, dict) else 0
    return Usage(
        _prompt_tokens(usage),
        token_count(usage.get("output_tokens")),
        cached_tokens=token_count(usage.get(_CACHE_READ)),
        cache_write_tokens=written,
        cache_write_1h_tokens=min(one_hour, written),
        web_search_requests=searches,
    )


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def error_for_event(payload: dict[str, Any], provider: str = "claude") -> TollgateError:
    """An Anthropic error object (``{"type": "error", "error": {...}}``) -> tollgate error, by type."""
    error = payload["error"] if isinstance(payload.get("error"), dict) else {}
    kind = str(error.get("type") or "unknown_error")
    message = str(error.get("message") or "no message")[:MAX_MESSAGE]
    return ERROR_TYPES.get(kind, UpstreamError)(f"{provider} {kind}: {message}")


def _container(container: Any) -> list[Chunk]:
    """The code execution container the answer worked in (a whole answer's ``container``, a stream's
    ``message_delta.delta.container``)."""
    return [ContainerInfo(container)] if isinstance(container, dict) and container.get("id") else []


def parse_response(payload: dict[str, Any]) -> list[Chunk]:
    """A whole Messages response -> the same typed chunks a stream would give."""
    if payload.get("type") == "error":
        raise error_for_event(payload)
    chunks: list[Chunk] = [ResponseMeta(model=payload.get("model"), upstream_id=payload.get("id"))]
    tool_calls = thinking = 0
    for block in _dicts(payload.get("content")):
        if (chunk := thinking_chunk(thinking, block)) is not None:
            chunks.append(chunk)
            thinking += 1
        elif block.get("type") == "text" and block.get("text"):
            chunks.append(TextDelta(str(block["text"])))
        elif block.get("type") == "tool_use":
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
            chunks.append(ToolCallDelta(tool_calls, block.get("id"), block.get("name"), arguments))
            tool_calls += 1
        elif block.get("type") != "text":
            chunks.append(NativeBlock(block))  # server tool use and results, new types: kept whole
    chunks.append(_finish(payload.get("stop_reason")) or Finish("stop"))
    chunks.extend(_container(payload.get("container")))
    usage = payload.get("usage")
    if isinstance(usage, dict):
        chunks.append(usage_of(usage))
    return chunks


class StreamParser:
    """One per streamed call: maps content blocks to tool-call indexes and keeps the usage seen."""

    def __init__(self, provider: str = "claude") -> None:
        self.provider = provider
        self.finished = False
        self._tool_calls: dict[int, int] = {}  # content block index -> tool call index (0, 1, ...)
        self._thinking: dict[int, int] = {}  # content block index -> thinking index (0, 1, ...)
        self._native = NativeBlocks()
        self._no_arguments: set[int] = set()  # tool calls whose arguments have not started yet
        self._usage = Usage(0, 0)
        self._handlers: dict[str, Callable[[dict[str, Any]], list[Chunk]]] = {
            "message_start": self.message_start,
            "content_block_start": self.content_block_start,
            "content_block_delta": self.content_block_delta,
            "content_block_stop": self.content_block_stop,
            "message_delta": self.message_delta,
            "message_stop": self.message_stop,
            "error": self.error,
        }

    def parse_event(self, event_name: str | None, payload: dict[str, Any]) -> list[Chunk]:
        """One SSE event -> typed chunks; ``ping`` and event types added later give nothing."""
        handler = self._handlers.get(event_name or str(payload.get("type") or ""))
        return handler(payload) if handler else []

    def message_start(self, payload: dict[str, Any]) -> list[Chunk]:
        """The answer's model and id, and its input usage at once (marked partial: the final usage at
        ``message_stop`` supersedes it), so a stream that breaks off is still charged its real input."""
        message = payload.get("message") or {}
        self._usage = usage_of(message.get("usage") or {})
        meta = ResponseMeta(model=message.get("model"), upstream_id=message.get("id"))
        return [meta, replace(self._usage, partial=True)]

    def content_block_start(self, payload: dict[str, Any]) -> list[Chunk]:
        block = payload.get("content_block") or {}
        if block.get("type") == "text":
            return [TextDelta(str(block["text"]))] if block.get("text") else []
        if (chunk := thinking_chunk(len(self._thinking), block)) is not None:
            self._thinking[int(payload.get("index") or 0)] = chunk.index
            return [chunk]
        if block.get("type") != "tool_use":  # server tool use and results, new types: kept whole
            self._native.start(int(payload.get("index") or 0), block)
            return []
        index = len(self._tool_calls)
        self._tool_calls[int(payload.get("index") or 0)] = index
        self._no_arguments.add(index)
        return [ToolCallDelta(index=index, id=block.get("id"), name=block.get("name"))]

    def content_block_delta(self, payload: dict[str, Any]) -> list[Chunk]:
        delta = payload.get("delta") or {}
        if delta.get("type") == "text_delta":
            return [TextDelta(str(delta["text"]))] if delta.get("text") else []
        if self._native.delta(int(payload.get("index") or 0), delta):
            return []
        if (thinking := self._thinking.get(int(payload.get("index") or 0))) is not None:
            text, signature = delta.get("thinking"), delta.get("signature")
            return (
                [ThinkingDelta(thinking, str(text or ""), str(signature or ""))] if text or signature else []
            )
        index = self._tool_calls.get(int(payload.get("index") or 0))
        partial = delta.get("partial_json")
        if delta.get("type") != "input_json_delta" or index is None or not partial:
            return []
        self._no_arguments.discard(index)
        return [ToolCallDelta(index=index, arguments=str(partial))]

    def content_block_stop(self, payload: dict[str, Any]) -> list[Chunk]:
        """A kept block is passed on whole; a tool call that streamed no arguments gets ``{}``, as an
        OpenAI upstream would send."""
        if native := self._native.stop(int(payload.get("index") or 0)):
            return list(native)
        index = self._tool_calls.get(int(payload.get("index") or 0))
        if index is None or index not in self._no_arguments:
            return []
        self._no_arguments.discard(index)
        return [ToolCallDelta(index=index, arguments="{}")]

    def message_delta(self, payload: dict[str, Any]) -> list[Chunk]:
        raw = payload.get("usage") or {}
        seen, usage = self._usage, usage_of(raw)
        # every count here is cumulative when sent (input and cache counts since 2025, output always)
        completion = seen.completion_tokens if raw.get("output_tokens") is None else usage.completion_tokens
        self._usage = Usage(
            max(seen.prompt_tokens, usage.prompt_tokens),
            completion,
            cached_tokens=max(seen.cached_tokens, usage.cached_tokens),
            cache_write_tokens=max(seen.cache_write_tokens, usage.cache_write_tokens),
            cache_write_1h_tokens=max(seen.cache_write_1h_tokens, usage.cache_write_1h_tokens),
            web_search_requests=max(seen.web_search_requests, usage.web_search_requests),
        )
        delta = payload.get("delta") or {}
        finish = _finish(delta.get("stop_reason"))
        # the answer's last usage (output included): charged as it is should message_stop not come
        return [self._usage, *([finish] if finish else []), *_container(delta.get("container"))]

    def message_stop(self, payload: dict[str, Any]) -> list[Chunk]:
        self.finished = True
        return [self._usage]

    def error(self, payload: dict[str, Any]) -> list[Chunk]:
        raise error_for_event(payload, self.provider)


async def parse_stream(events: AsyncIterator[SSEvent], provider: str = "claude") -> AsyncIterator[Chunk]:
    """SSE events -> chunks; a stream that ends before ``message_stop`` is an upstream error."""
    parser = StreamParser(provider)
    async for event in events:
        for chunk in parser.parse_event(event.event, decode_upstream_json(event.data)):
            yield chunk
    if not parser.finished:
        raise UpstreamError(f"{provider} stream ended before message_stop")
