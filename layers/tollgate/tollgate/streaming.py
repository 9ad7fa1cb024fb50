"""Typed chunks -> a client's answer, in any wire format: the collector (``ResponseBuilder``), the stream
encoder protocol every wire format implements (``wire``), and the stream finaliser.

The finaliser (``sse_stream``'s exit paths) records the request on normal end, upstream error and
client disconnect alike, and always before the final ``data: [DONE]``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, Protocol

import anyio

from .containers import Revealed, anthropic_revealed, openai_revealed
from .errors import TollgateError, UpstreamError
from .lifecycle import Outcome, RequestTracker
from .prompt_bound import prompt_estimate
from .providers import openai_responses
from .providers.base import (
    ChatCall,
    Chunk,
    ContainerInfo,
    Finish,
    NativeBlock,
    NativeEvent,
    ResponseMeta,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    Usage,
)
from .tokens import estimate_tokens

logger = logging.getLogger("tollgate.stream")


class ResponseBuilder:
    """Collects chunks: the whole answer for non-streamed responses, the usage for every response."""

    def __init__(self, call: ChatCall) -> None:
        self.call = call
        self.text: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        # pieces of Anthropic-only blocks (thinking, server tool use), in order; the Messages wire shows them
        self.anthropic_blocks: list[ThinkingDelta | NativeBlock] = []
        self.finish: str | None = None
        self.usage: Usage | None = None
        self.model = call.model
        self.upstream_id: str | None = None
        self.response_id = call.request_id  # a loop answers with its request's id, not its turn's
        self.native_response: dict[str, Any] | None = None  # an upstream's own answer in the client's format
        self.native_items: list[Any] = []  # the items a native Responses stream finished, as they came
        self.container: dict[str, Any] | None = None  # the code execution container an Anthropic answer used

    def add(self, chunk: Chunk) -> None:
        if isinstance(chunk, TextDelta):
            self.text.append(chunk.text)
        elif isinstance(chunk, ToolCallDelta):
            entry = self.tool_calls.setdefault(
                chunk.index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
            )
            entry["id"] = chunk.id or entry["id"]
            entry["function"]["name"] = chunk.name or entry["function"]["name"]
            entry["function"]["arguments"] += chunk.arguments
        elif isinstance(chunk, ThinkingDelta | NativeBlock):
            self.anthropic_blocks.append(chunk)
        elif isinstance(chunk, Finish):
            self.finish = chunk.reason
        elif isinstance(chunk, Usage):
            self.usage = chunk
        elif isinstance(chunk, ResponseMeta):
            self.model = chunk.model or self.model
            self.upstream_id = chunk.upstream_id or self.upstream_id
        elif isinstance(chunk, ContainerInfo):
            self.container = chunk.container
        elif isinstance(chunk, NativeEvent) and isinstance(chunk.payload.get("response"), dict):
            self.native_response = chunk.payload["response"]  # the last one is the final one
        elif isinstance(chunk, NativeEvent) and chunk.payload.get("type") == "response.output_item.done":
            self.native_items.append(chunk.payload.get("item"))  # a hosted call is billed once it is done

    @property
    def finish_seen(self) -> bool:
        return self.finish is not None

    def final_usage(self) -> Usage:
        """The upstream's usage; where it reported only a partial one (the stream broke off after
        Anthropic's ``message_start``), that usage with the output seen so far where the estimate of it is
        more; where it reported none, an estimate of what was sent and what came back. An estimated part
        marks the usage ``estimated``."""
        usage = self.usage
        if usage is not None and (usage.prompt_tokens or usage.completion_tokens):
            if not usage.partial:
                return usage
            seen = self._output_estimate()
            if seen <= usage.completion_tokens:
                return replace(usage, partial=False)
            return replace(usage, completion_tokens=seen, estimated=True, partial=False)
        # none came (the stream broke off): the hosted calls it passed on are charged all the same
        hosted = openai_responses.hosted_calls(self.native_items, self.call.native_responses or {})
        return Usage(prompt_estimate(self.call), self._output_estimate(), estimated=True).with_hosted(*hosted)

    def _output_estimate(self) -> int:
        """The output tokens of what came back: text, tool calls and thinking."""
        calls = "".join(c["function"]["name"] + c["function"]["arguments"] for c in self.tool_calls.values())
        thinking = "".join(b.text for b in self.anthropic_blocks if isinstance(b, ThinkingDelta))
        return estimate_tokens("".join(self.text)) + estimate_tokens(calls) + estimate_tokens(thinking)

    def message(self) -> dict[str, Any]:
        """The assistant message as OpenAI shapes it (also what a session stores)."""
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.text) or None}
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        return message

    def revealed_containers(self) -> tuple[Revealed, ...]:
        """The code execution containers the answer worked in: an Anthropic answer's, or those of a native
        Responses answer's items (its final output, and those a stream finished before it broke off)."""
        if self.container is None and self.native_response is None and not self.native_items:
            return ()  # neither an Anthropic container nor a native Responses answer
        output = (self.native_response or {}).get("output")
        items = [*self.native_items, *(output if isinstance(output, list) else [])]
        return (*anthropic_revealed(self.container), *openai_revealed(items))

    def outcome(self, status: str = "ok", error: TollgateError | None = None) -> Outcome:
        return Outcome(
            status=status,
            usage=self.final_usage(),
            model=self.model,
            error=error,
            answer=self.message(),
            containers=self.revealed_containers(),
        )


class StreamEncoder(Protocol):
    """One wire format's SSE frames (OpenAI chunks, Anthropic events, legacy completions)."""

    def start(self) -> list[bytes]: ...

    def chunk(self, chunk: Chunk) -> list[bytes]: ...

    def end(self, builder: ResponseBuilder, outcome: Outcome, extension: dict[str, Any]) -> list[bytes]: ...

    def error(self, error: TollgateError) -> list[bytes]: ...


class LoopStreamEncoder(StreamEncoder, Protocol):
    """A wire format that can also mark an agent loop's turn boundaries."""

    def marker(self, info: dict[str, Any]) -> list[bytes]: ...


async def sse_stream(
    call: ChatCall,
    first: Chunk | None,
    chunks: AsyncIterator[Chunk],
    tracker: RequestTracker,
    encoder: StreamEncoder,
) -> AsyncIterator[bytes]:
    """Frame chunks as SSE as they arrive; finish the request before the last frame on every exit path."""
    builder = ResponseBuilder(call)
    outcome: Outcome | None = None
    try:
        if frames := encoder.start():
            yield _joined(frames)
        if first is not None:
            builder.add(first)
            if frames := encoder.chunk(first):
                yield _joined(frames)
        # the hot loop: one pass per upstream chunk, no extra generator layer, one write per chunk
        async for chunk in chunks:
            builder.add(chunk)
            if frames := encoder.chunk(chunk):
                yield _joined(frames)
        outcome = builder.outcome()
        extension = await _finish_shielded(tracker, outcome)
        if frames := encoder.end(builder, outcome, extension):
            yield _joined(frames)
    except TollgateError as exc:
        outcome = builder.outcome(exc.code or "error", exc)
        await _finish_shielded(tracker, outcome)
        for frame in encoder.error(exc):
            yield frame
    except Exception:  # a bug must still end the stream with an error event and be recorded
        logger.exception("stream failed", extra={"request_id": call.request_id})
        failure = UpstreamError("internal error while streaming", code="internal_error")
        outcome = builder.outcome("internal_error", failure)
        await _finish_shielded(tracker, outcome)
        for frame in encoder.error(failure):
            yield frame
    finally:
        # client disconnect (cancellation / aclose): still settle, and close the upstream promptly
        with anyio.CancelScope(shield=True):
            if outcome is None:
                await tracker.finish(builder.outcome("client_closed"))
            await _aclose(chunks)


async def collect(
    call: ChatCall, first: Chunk | None, chunks: AsyncIterator[Chunk], tracker: RequestTracker
) -> tuple[ResponseBuilder, Outcome, dict[str, Any]]:
    """A whole (non-streamed) answer, finished (settled, audited) before the caller renders it; a failure
    while reading raises, finished here with the usage the upstream reported before it (a failed native
    Responses answer: charged what OpenAI counted, as a stream is), else by the caller."""
    builder = ResponseBuilder(call)
    try:
        async for chunk in _chain([] if first is None else [first], chunks):
            builder.add(chunk)
    except TollgateError as exc:
        if builder.usage is not None:
            await _finish_shielded(tracker, builder.outcome(exc.code or "error", exc))
        raise
    finally:
        await _aclose(chunks)
    outcome = builder.outcome()
    extension = await tracker.finish(outcome)
    return builder, outcome, extension


async def with_first(first: Chunk | None, rest: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
    """``first`` (already read from ``rest``), then the rest; closing this closes ``rest`` too."""
    try:
        if first is not None:
            yield first
        async for chunk in rest:
            yield chunk
    finally:
        with anyio.CancelScope(shield=True):
            await _aclose(rest)


def _joined(frames: list[bytes]) -> bytes:
    """One chunk's frames as one write (one ASGI send, one socket write); the bytes are the same."""
    return frames[0] if len(frames) == 1 else b"".join(frames)


async def _chain(pending: list[Chunk], rest: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
    for chunk in pending:
        yield chunk
    async for chunk in rest:
        yield chunk


async def _finish_shielded(tracker: RequestTracker, outcome: Outcome) -> dict[str, Any]:
    extension: dict[str, Any] = {}
    with anyio.CancelScope(shield=True):
        extension = await tracker.finish(outcome)
    return extension


async def _aclose(chunks: AsyncIterator[Chunk]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
