"""What every adapter speaks: the call it receives, the typed chunks it yields, and its Protocol.

An adapter is an async generator of chunks (as in simonw/llm); the framework collects them into a
response or frames them as SSE. Streaming and non-streaming calls yield the same chunk types, so one
path does the accounting for both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ..schemas.openai import ChatCompletionRequest

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass(frozen=True, slots=True)
class ChatCall:
    """One upstream call: the validated request (extensions already applied) plus what routing decided."""

    request_id: str
    provider: str
    model: str
    max_tokens: int
    request: ChatCompletionRequest

    @property
    def stream(self) -> bool:
        return self.request.stream

    def passthrough(self) -> dict[str, Any]:
        return self.request.passthrough()


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call: the first piece of call ``index`` carries id and name."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class Finish:
    reason: FinishReason


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ResponseMeta:
    """The model the upstream says answered (pricing uses it) and its response id."""

    model: str | None = None
    upstream_id: str | None = None


Chunk = TextDelta | ToolCallDelta | Finish | Usage | ResponseMeta


class Provider(Protocol):
    """A provider adapter. ``chat`` raises only ``tollgate.errors`` exceptions."""

    name: str

    def chat(self, call: ChatCall) -> AsyncIterator[Chunk]: ...

    async def aclose(self) -> None: ...
