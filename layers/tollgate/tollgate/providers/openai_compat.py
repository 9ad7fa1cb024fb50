"""OpenAI chat-completions wire protocol: openai, openrouter, ollama and llama.cpp.

A Responses API request to the ``openai`` provider goes to its own ``/responses`` (``openai_responses``).

Pure functions (``to_upstream``, ``parse_chunk``, ``parse_response``, ``parse_stream``); the thin I/O is
the shared ``HTTPProvider``. All four upstreams also have the legacy ``/completions`` endpoint: a call
with ``legacy_prompt`` goes there (``legacy_*`` functions), and ``/embeddings`` (``openai_embeddings``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from ..config import ProviderConfig
from ..errors import UpstreamError
from ..schemas.openai import ChatCompletionRequest, Message
from . import catalog, openai_responses
from .base import (
    ChatCall,
    Chunk,
    EmbeddingCall,
    EmbeddingResult,
    Finish,
    FinishReason,
    ResponseMeta,
    TextDelta,
    ToolCallDelta,
    Usage,
    token_count,
)
from .http_errors import decode_upstream_json
from .http_provider import HTTPProvider
from .openai_embeddings import parse_embeddings, to_embeddings_upstream
from .passthrough import upstream_passthrough
from .sse import SSEvent

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}

logger = logging.getLogger(__name__)

# OpenAI models that take ``reasoning_effort`` (the others refuse it); the other providers all accept it
# (OpenRouter maps it per model; llama.cpp and Ollama pass it to reasoning templates or ignore it).
OPENAI_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")

_SYSTEM_ROLES = ("system", "developer")


def endpoint(config: ProviderConfig, path: str = "/chat/completions") -> str:
    """ollama and llama.cpp serve the OpenAI API under /v1 of their base URL; the clouds' URLs include it."""
    return f"{config.base_url}{catalog.spec(config.name).api_prefix}{path}"


def headers(config: ProviderConfig) -> dict[str, str]:
    result = dict(config.headers)
    if config.api_key is not None and config.api_key.get_secret_value():
        result["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
    return result


def _message(message: Any, provider: str) -> dict[str, Any]:
    data: dict[str, Any] = message.model_dump(exclude_none=True)
    if provider != "openai" and data["role"] == "developer":
        data["role"] = "system"
    return data


def to_upstream(call: ChatCall) -> dict[str, Any]:
    """The upstream JSON body: safe unknown pass-through fields (never extensions), then the known ones."""
    request = call.request
    body = upstream_passthrough(request.passthrough(), call.provider)
    body["model"] = call.model
    body["messages"] = [_message(m, call.provider) for m in _system_first(request, call.provider)]
    # OpenAI's current models take only max_completion_tokens; the others still read max_tokens.
    body["max_completion_tokens" if call.provider == "openai" else "max_tokens"] = call.max_tokens
    tools = request.function_tools()
    optional = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": request.stop,
        # a choice among tools that were all Anthropic server tools (left out above) means nothing here
        "tool_choice": request.tool_choice if tools or not request.tools else None,
        "response_format": request.response_format,
        "user": request.user,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if tools:
        body["tools"] = [tool.model_dump(exclude_none=True) for tool in tools]
    body["stream"] = call.stream
    if call.stream:
        body["stream_options"] = {"include_usage": True}
    body.update(_reasoning(call, body))
    return body


def _system_first(request: ChatCompletionRequest, provider: str) -> list[Message]:
    """The messages; for ollama and llama.cpp, whose chat templates often refuse a system message after
    the first turn, a Messages client's system turns (Claude Code's) are folded into the system prompt.
    OpenAI and OpenRouter take them in place."""
    messages = request.messages
    system = [m for m in messages if m.role in _SYSTEM_ROLES]
    if request.anthropic is None or not catalog.spec(provider).local or _leading(messages) == len(system):
        return messages
    prompt = Message(role="system", content="\n\n".join(m.text() for m in system if m.text()))
    return [prompt, *(m for m in messages if m.role not in _SYSTEM_ROLES)]


def _leading(messages: list[Message]) -> int:
    """How many system messages come before the first other one."""
    return next((i for i, m in enumerate(messages) if m.role not in _SYSTEM_ROLES), len(messages))


def _reasoning(call: ChatCall, body: dict[str, Any]) -> dict[str, Any]:
    """A Messages client's thinking / effort as ``reasoning_effort``; its other Anthropic fields are
    dropped (named at DEBUG), as are thinking blocks and cache marks (never dumped)."""
    options = call.request.anthropic
    if options is None or "reasoning_effort" in body:
        return {}
    names = [*options.extra, *(n for n in ("context_management", "metadata") if getattr(options, n))]
    if names:
        logger.debug("%s: dropping Messages fields: %s", call.provider, ", ".join(sorted(names)))
    effort = options.reasoning_effort()
    takes_effort = call.provider != "openai" or call.model.startswith(OPENAI_REASONING_PREFIXES)
    return {"reasoning_effort": effort} if effort and takes_effort else {}


def _finish(reason: Any) -> Finish | None:
    if not reason:
        return None
    return Finish(FINISH_REASONS.get(str(reason), "stop"))


def _usage(payload: dict[str, Any]) -> Usage | None:
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens_details")
    completion = usage.get("completion_tokens_details")
    prompt = prompt if isinstance(prompt, dict) else {}
    completion = completion if isinstance(completion, dict) else {}
    return Usage(
        token_count(usage.get("prompt_tokens")),
        token_count(usage.get("completion_tokens")),
        cached_tokens=token_count(prompt.get("cached_tokens")),
        reasoning_tokens=token_count(completion.get("reasoning_tokens")),
        cache_write_tokens=token_count(prompt.get("cache_write_tokens")),  # OpenRouter's, for Claude models
    )


def parse_chunk(payload: dict[str, Any]) -> list[Chunk]:
    """One streamed ``chat.completion.chunk`` -> typed chunks."""
    if "error" in payload:
        raise UpstreamError(f"upstream error mid-stream: {_error_text(payload['error'])}")
    chunks: list[Chunk] = []
    if payload.get("model") or payload.get("id"):
        chunks.append(ResponseMeta(model=payload.get("model"), upstream_id=payload.get("id")))
    for choice in payload.get("choices") or []:
        delta = choice.get("delta") or {}
        if delta.get("content"):
            chunks.append(TextDelta(delta["content"]))
        for call in delta.get("tool_calls") or []:
            function = call.get("function") or {}
            chunks.append(
                ToolCallDelta(
                    index=int(call.get("index", 0)),
                    id=call.get("id"),
                    name=function.get("name"),
                    arguments=function.get("arguments") or "",
                )
            )
        finish = _finish(choice.get("finish_reason"))
        if finish:
            chunks.append(finish)
    usage = _usage(payload)
    if usage:
        chunks.append(usage)
    return chunks


def parse_response(payload: dict[str, Any]) -> list[Chunk]:
    """A whole ``chat.completion`` -> the same typed chunks a stream would give."""
    chunks: list[Chunk] = [ResponseMeta(model=payload.get("model"), upstream_id=payload.get("id"))]
    choices = payload.get("choices") or []
    if not choices:
        raise UpstreamError("upstream answered without choices")
    choice = choices[0]
    message = choice.get("message") or {}
    if message.get("content"):
        chunks.append(TextDelta(message["content"]))
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        chunks.append(
            ToolCallDelta(
                index=index,
                id=call.get("id"),
                name=function.get("name"),
                arguments=function.get("arguments") or "",
            )
        )
    chunks.append(_finish(choice.get("finish_reason")) or Finish("stop"))
    usage = _usage(payload)
    if usage:
        chunks.append(usage)
    return chunks


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


async def _data_events(
    events: AsyncIterator[SSEvent], parse: Callable[[dict[str, Any]], list[Chunk]]
) -> AsyncIterator[Chunk]:
    """SSE events -> chunks; after ``[DONE]`` the body is read to its end so the connection is reused.
    A ``ResponseMeta`` equal to the last one is dropped (every OpenAI chunk repeats its id and model):
    it would change nothing downstream, and each chunk crosses every layer up to the client's socket."""
    done = False
    meta: Chunk | None = None
    async for event in events:
        if done or event.data == "[DONE]":
            done = True
            continue
        for chunk in parse(decode_upstream_json(event.data)):
            if isinstance(chunk, ResponseMeta):
                if chunk == meta:
                    continue
                meta = chunk
            yield chunk


def parse_stream(events: AsyncIterator[SSEvent]) -> AsyncIterator[Chunk]:
    """A streamed chat completion."""
    return _data_events(events, parse_chunk)


# ------------------------------------------------------------------------------ legacy /completions


def legacy_to_upstream(call: ChatCall) -> dict[str, Any]:
    """The legacy ``/completions`` body: the prompt, the cap as ``max_tokens``, pass-through fields."""
    if call.legacy_prompt is None:
        raise ValueError("not a legacy completion call")
    request = call.request
    body = upstream_passthrough(request.passthrough(), call.provider)
    body.update(model=call.model, prompt=call.legacy_prompt, max_tokens=call.max_tokens)
    optional = {"temperature": request.temperature, "top_p": request.top_p, "stop": request.stop}
    body.update({k: v for k, v in optional.items() if v is not None})
    if request.user:
        body["user"] = request.user
    body["stream"] = call.stream
    if call.stream:
        body["stream_options"] = {"include_usage": True}
    return body


def _legacy_choices(payload: dict[str, Any]) -> list[Chunk]:
    chunks: list[Chunk] = []
    for choice in payload.get("choices") or []:
        if choice.get("text"):
            chunks.append(TextDelta(str(choice["text"])))
        finish = _finish(choice.get("finish_reason"))
        if finish:
            chunks.append(finish)
    return chunks


def legacy_parse_chunk(payload: dict[str, Any]) -> list[Chunk]:
    """One streamed ``text_completion`` event -> typed chunks."""
    if "error" in payload:
        raise UpstreamError(f"upstream error mid-stream: {_error_text(payload['error'])}")
    chunks: list[Chunk] = []
    if payload.get("model") or payload.get("id"):
        chunks.append(ResponseMeta(model=payload.get("model"), upstream_id=payload.get("id")))
    chunks += _legacy_choices(payload)
    usage = _usage(payload)
    return [*chunks, usage] if usage else chunks


def legacy_parse_response(payload: dict[str, Any]) -> list[Chunk]:
    """A whole ``text_completion`` -> the same typed chunks a stream would give."""
    if not payload.get("choices"):
        raise UpstreamError("upstream answered without choices")
    chunks: list[Chunk] = [ResponseMeta(model=payload.get("model"), upstream_id=payload.get("id"))]
    choice = payload["choices"][0]
    if choice.get("text"):
        chunks.append(TextDelta(str(choice["text"])))
    chunks.append(_finish(choice.get("finish_reason")) or Finish("stop"))
    usage = _usage(payload)
    return [*chunks, usage] if usage else chunks


def legacy_parse_stream(events: AsyncIterator[SSEvent]) -> AsyncIterator[Chunk]:
    """A streamed legacy completion."""
    return _data_events(events, legacy_parse_chunk)


class OpenAICompatProvider(HTTPProvider):
    """openai, openrouter, ollama and llama.cpp: chat completions, legacy completions and embeddings."""

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient) -> None:
        super().__init__(
            config,
            client,
            url=endpoint(config),
            headers=headers(config),
            to_upstream=to_upstream,
            parse_response=parse_response,
            parse_stream=parse_stream,
        )
        self._legacy = HTTPProvider(
            config,
            client,
            url=endpoint(config, "/completions"),
            headers=headers(config),
            to_upstream=legacy_to_upstream,
            parse_response=legacy_parse_response,
            parse_stream=legacy_parse_stream,
        )
        self._embeddings_url = endpoint(config, "/embeddings")
        self._responses = HTTPProvider(
            config,
            client,
            url=endpoint(config, "/responses"),
            headers=headers(config),
            to_upstream=openai_responses.to_upstream,
            parse_response=openai_responses.parse_response,
            parse_stream=openai_responses.parse_stream,
        )

    def chat(self, call: ChatCall) -> AsyncIterator[Chunk]:
        if call.legacy_prompt is not None:
            return self._legacy.chat(call)
        if call.native_responses is not None and call.provider == "openai":
            return self._responses.chat(call)  # OpenAI's own /v1/responses (openai_responses)
        return super().chat(call)

    async def embed(self, call: EmbeddingCall) -> EmbeddingResult:
        """``/embeddings``, always asking for floats (the gateway encodes base64 itself)."""
        payload = await self.post_json(self._embeddings_url, to_embeddings_upstream(call))
        return parse_embeddings(payload, call)
