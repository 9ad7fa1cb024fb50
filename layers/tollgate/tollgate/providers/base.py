"""What every adapter speaks: the call it receives, the typed chunks it yields, and its Protocol.

An adapter is an async generator of chunks (as in simonw/llm); the framework collects them into a
response or frames them as SSE. Streaming and non-streaming calls yield the same chunk types, so one
path does the accounting for both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

from ..schemas.completions import LegacyCompletionRequest
from ..schemas.openai import ChatCompletionRequest
from ..schemas.responses import ResponsesChatRequest

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass(frozen=True, slots=True)
class ChatCall:
    """One upstream call: the validated request (extensions already applied) plus what routing decided."""

    request_id: str
    provider: str
    model: str
    max_tokens: int
    request: ChatCompletionRequest
    deployment: str | None = None  # the routing deployment's id (None: the provider's own, from env)

    @property
    def stream(self) -> bool:
        return self.request.stream

    def passthrough(self) -> dict[str, Any]:
        return self.request.passthrough()

    @property
    def legacy_prompt(self) -> str | None:
        """The prompt of a legacy ``/v1/completions`` request: adapters whose upstream has that endpoint
        send it there; the others answer the equivalent chat request (the prompt as one user message).
        Read from the request, so every ChatCall made from it (history, fallback) keeps the mode."""
        request = self.request
        return request.legacy_prompt if isinstance(request, LegacyCompletionRequest) else None

    @property
    def native_responses(self) -> dict[str, Any] | None:
        """The client's body of a Responses API request that an upstream with its own /v1/responses
        (OpenAI) may get as it is; None for every other request."""
        request = self.request
        return request.responses.native if isinstance(request, ResponsesChatRequest) else None


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
class ThinkingDelta:
    """A piece of thinking block ``index`` (0, 1, ... in the order the blocks began): thinking text, its
    signature (sent once, at the end), or a redacted block's opaque ``redacted`` data. The signature and
    the data go back to the upstream unchanged on a later turn, so they are never split or rewritten."""

    index: int
    text: str = ""
    signature: str = ""
    redacted: str | None = None


@dataclass(frozen=True, slots=True)
class NativeBlock:
    """A whole Anthropic content block with no OpenAI counterpart (a server tool call or its result, ...),
    passed to a Messages client as it came; other wires leave it out."""

    block: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Finish:
    reason: FinishReason


# The most tokens one usage field may claim (a billion: far above any context window or output cap). A
# count above it (1e20, Infinity, a 30-digit integer) is clamped to it rather than dropped: the request is
# still charged in full for what the upstream says (an overdraft, which refuses the pool's next request and
# warns), but no store, sum or price sees a number it cannot hold (SQLite and DynamoDB integers are 64-bit;
# int(inf) raises), so the request is always settled and audited.
MAX_TOKEN_COUNT = 1_000_000_000


def token_count(value: Any) -> int:
    """An upstream's token count: a whole number >= 0, clamped at ``MAX_TOKEN_COUNT``; anything else
    (absent, null, a string, a negative or fractional number, NaN) counts 0, so an odd usage object can
    never fail an answer or its settle."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value < 0:
        return 0
    if value > MAX_TOKEN_COUNT:
        return MAX_TOKEN_COUNT
    return int(value) if value == int(value) else 0


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one answer used, OpenAI's way: ``prompt_tokens`` is every input token, the ones read from
    and written to the upstream's prompt cache included; ``completion_tokens`` every output token, the
    reasoning ones included. The three parts below are subsets of those two, as the upstream reports them
    (0 where it does not), so nothing is counted twice: pricing charges the uncached rest of the prompt
    at the input rate (``uncached_prompt_tokens``) and the rest of the output at the output rate."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False
    cached_tokens: int = 0  # prompt tokens read from the cache
    reasoning_tokens: int = 0  # completion tokens spent reasoning
    cache_write_tokens: int = 0  # prompt tokens written to the cache
    # the part of cache_write_tokens written with a 1-hour TTL (Anthropic's ``ephemeral_1h_input_tokens``,
    # Bedrock's ``cacheDetails`` ttl 1h): billed at their own, higher rate
    cache_write_1h_tokens: int = 0
    # what the upstream reported before its answer ended (Anthropic's ``message_start``): the input is
    # known, the output may still grow; a later usage supersedes it, and if none comes (the stream broke
    # off) the collector tops the output up with what it saw (``streaming.ResponseBuilder.final_usage``)
    partial: bool = False
    # searches an Anthropic web search server tool ran (``usage.server_tool_use.web_search_requests``) or
    # OpenAI's hosted ``web_search`` did (its ``web_search_call`` items): billed per search on top of the
    # tokens (the price's ``web_search`` fee); OpenAI's older ``web_search_preview`` ones and its hosted
    # ``file_search`` calls have fees of their own (``tool_fees``)
    web_search_requests: int = 0
    web_search_preview_requests: int = 0
    file_search_calls: int = 0

    def with_hosted(self, web_searches: int, preview_searches: int, file_searches: int) -> Usage:
        """This usage with an OpenAI answer's billed hosted calls (``openai_responses.hosted_calls``)."""
        return replace(
            self,
            web_search_requests=web_searches,
            web_search_preview_requests=preview_searches,
            file_search_calls=file_searches,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def uncached_prompt_tokens(self) -> int:
        """Prompt tokens neither read from nor written to the cache (Anthropic's ``input_tokens``)."""
        return max(self.prompt_tokens - self.cached_tokens - self.cache_write_tokens, 0)

    def __add__(self, other: Usage) -> Usage:
        """Two answers' usage together (an agent loop's turns)."""
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.estimated or other.estimated,
            self.cached_tokens + other.cached_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.cache_write_1h_tokens + other.cache_write_1h_tokens,
            self.partial or other.partial,
            self.web_search_requests + other.web_search_requests,
            self.web_search_preview_requests + other.web_search_preview_requests,
            self.file_search_calls + other.file_search_calls,
        )


@dataclass(frozen=True, slots=True)
class ResponseMeta:
    """The model the upstream says answered (pricing uses it) and its response id."""

    model: str | None = None
    upstream_id: str | None = None


@dataclass(frozen=True, slots=True)
class NativeEvent:
    """An event of an upstream that speaks the client's own wire format (OpenAI's Responses API), passed
    on as it is by that format's encoder; the typed chunks beside it do the accounting, and every other
    encoder ignores it. ``payload["type"]`` is the event type; a whole buffered answer is ``"response"``."""

    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """The code execution container an Anthropic answer worked in (its ``container`` object as sent:
    ``id``, ``expires_at``, ``skills``): recorded as the caller's tenant's (``tollgate.containers``) and
    passed on by the Messages encoder; every other encoder ignores it."""

    container: dict[str, Any]


Chunk = (
    TextDelta
    | ToolCallDelta
    | ThinkingDelta
    | NativeBlock
    | Finish
    | Usage
    | ResponseMeta
    | NativeEvent
    | ContainerInfo
)


class Provider(Protocol):
    """A provider adapter. ``chat`` raises only ``tollgate.errors`` exceptions."""

    name: str

    def chat(self, call: ChatCall) -> AsyncIterator[Chunk]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class TokenCounter(Protocol):
    """A provider adapter whose upstream counts a request's input tokens; None when it cannot for this
    call (tollgate then estimates). ``count_tokens`` raises only ``tollgate.errors``."""

    name: str

    async def count_tokens(self, call: ChatCall) -> int | None: ...


@dataclass(frozen=True, slots=True)
class EmbeddingCall:
    """One embeddings request as routing decided it: the texts (at least one), in order."""

    request_id: str
    provider: str
    model: str
    inputs: tuple[str, ...]
    dimensions: int | None = None
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # unknown fields, for OpenAI-compatible upstreams


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    """One vector per input, in input order, and the prompt tokens the upstream counted (or estimated)."""

    vectors: list[list[float]]
    usage: Usage
    model: str | None = None


@runtime_checkable
class Embedder(Protocol):
    """A provider adapter that also serves embeddings. ``embed`` raises only ``tollgate.errors``."""

    name: str

    async def embed(self, call: EmbeddingCall) -> EmbeddingResult: ...
