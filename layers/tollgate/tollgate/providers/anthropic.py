"""Anthropic Messages wire protocol (provider ``claude``, alias ``anthropic``).

Pure functions (``to_upstream``, ``parse_response``) and the per-call ``StreamParser`` are kept apart
from the thin I/O in ``AnthropicProvider.chat``; stop reasons and error types map by tables.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from ..anthropic_tables import STOP_REASONS, TOOL_CHOICES
from ..config import ProviderConfig
from ..errors import (
    BadRequest,
    TollgateError,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ..json_depth import MAX_JSON_DEPTH, too_deep
from ..schemas.openai import ChatCompletionRequest, ContentPart, ImagePart, Message, Tool, ToolCall
from .anthropic_native import (
    NativeBlocks,
    beta_headers,
    count_body,
    native_fields,
    thinking_chunk,
    tool_block,
    with_cache_control,
)
from .base import (
    ChatCall,
    Chunk,
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
from .http_provider import HTTPProvider
from .images import is_remote, parse_data_url
from .sse import SSEvent
from .turns import append_turn

logger = logging.getLogger(__name__)

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

_SYSTEM_ROLES = frozenset({"system", "developer"})
# Anthropic's input_tokens leaves out the cache writes and reads; tollgate's prompt_tokens is all three
_CACHE_READ, _CACHE_WRITE = "cache_read_input_tokens", "cache_creation_input_tokens"
_PROMPT_USAGE_FIELDS = ("input_tokens", _CACHE_WRITE, _CACHE_READ)

Block = dict[str, Any]


def endpoint(config: ProviderConfig) -> str:
    return f"{config.base_url}/messages"


def headers(config: ProviderConfig) -> dict[str, str]:
    result = dict(config.headers)
    if config.api_key is not None and config.api_key.get_secret_value():
        result["x-api-key"] = config.api_key.get_secret_value()
    return result


def _image_block(url: str, param: str) -> Block:
    if is_remote(url):
        return {"type": "image", "source": {"type": "url", "url": url}}
    image = parse_data_url(url, param=param)
    source = {"type": "base64", "media_type": image.media_type, "data": image.data_b64}
    return {"type": "image", "source": source}


def _content_blocks(content: str | list[ContentPart] | None, param: str) -> list[Block]:
    """Text and image blocks (``cache_control`` kept); empty text is left out (Anthropic refuses it)."""
    if not isinstance(content, list):
        return [{"type": "text", "text": content}] if content and content.strip() else []
    blocks: list[Block] = []
    for i, part in enumerate(content):
        if isinstance(part, ImagePart):
            image = _image_block(part.image_url.url, f"{param}[{i}].image_url.url")
            blocks.append(with_cache_control(image, part.cache_control))
        elif part.text.strip():
            blocks.append(with_cache_control({"type": "text", "text": part.text}, part.cache_control))
    return blocks


def _arguments(raw: str, param: str) -> dict[str, Any]:
    if too_deep(raw):
        raise BadRequest(f"tool call arguments nest deeper than {MAX_JSON_DEPTH} levels", param=param)
    try:
        value = json.loads(raw) if raw.strip() else {}
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise BadRequest("tool call arguments must be a JSON object", param=param)
    return value


def _tool_use(call: ToolCall, param: str) -> Block:
    arguments = _arguments(call.function.arguments, f"{param}.function.arguments")
    return {"type": "tool_use", "id": call.id, "name": call.function.name, "input": arguments}


def _tool_result(message: Message, param: str) -> Block:
    if not message.tool_call_id:
        raise BadRequest("tool messages need a tool_call_id", param=f"{param}.tool_call_id")
    block: Block = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    if message.tool_content is not None:
        block["content"] = message.tool_content  # as the Messages client sent it
    elif content := _content_blocks(message.content, f"{param}.content"):
        block["content"] = content
    if message.tool_error:
        block["is_error"] = True
    return with_cache_control(block, message.cache_control)


def _turn(message: Message, param: str) -> tuple[str, list[Block]]:
    if message.role == "tool":
        return "user", [_tool_result(message, param)]
    if message.role in _SYSTEM_ROLES:
        return "system", _content_blocks(message.content, f"{param}.content")
    if message.anthropic_content is not None:  # a Messages client's turn with blocks tollgate keeps whole
        return message.role, list(message.anthropic_content)
    blocks = _content_blocks(message.content, f"{param}.content")
    if message.role == "assistant" and message.thinking_blocks:  # first and byte-exact (signatures)
        blocks = [block.block() for block in message.thinking_blocks] + blocks
    if message.role == "assistant" and message.tool_calls:
        blocks += [_tool_use(c, f"{param}.tool_calls[{j}]") for j, c in enumerate(message.tool_calls)]
    return message.role, blocks


def _first_turn(messages: list[Message]) -> int:
    return next((i for i, m in enumerate(messages) if m.role not in _SYSTEM_ROLES), len(messages))


def _messages(messages: list[Message], in_place: bool) -> list[Block]:
    """The turns; consecutive same-role messages merge (Anthropic wants alternation). With ``in_place``
    (a Messages client sent system turns inside ``messages``) system messages after the first turn stay
    where they are; otherwise every system message went to the system prompt."""
    turns: list[Block] = []
    first = _first_turn(messages)
    for i, message in enumerate(messages):
        if message.role in _SYSTEM_ROLES and (i < first or not in_place):
            continue
        append_turn(turns, *_turn(message, f"messages[{i}]"))
    if not any(turn["role"] != "system" for turn in turns):
        raise BadRequest("at least one non-empty user or assistant message is required", param="messages")
    return turns


def _system(messages: list[Message]) -> str | list[Block]:
    """The system prompt: one string, or text blocks when a part carries ``cache_control``."""
    parts = [
        part for m in messages if m.role in _SYSTEM_ROLES for part in _content_blocks(m.content, "system")
    ]
    if any("cache_control" in part for part in parts):
        return parts
    return "\n\n".join(m.text() for m in messages if m.role in _SYSTEM_ROLES and m.text())


def _tool(tool: Tool) -> Block:
    if tool.anthropic_tool is not None:
        return tool_block(tool)
    function, no_parameters = tool.function, {"type": "object", "properties": {}}
    result: Block = {"name": function.name, "input_schema": function.parameters or no_parameters}
    if function.description:
        result["description"] = function.description
    return with_cache_control(result, tool.cache_control)


def _tool_choice(choice: str | dict[str, Any]) -> Block:
    if isinstance(choice, str):
        return {"type": TOOL_CHOICES[choice]}
    function = choice.get("function")
    if choice.get("type") == "function" and isinstance(function, dict) and function.get("name"):
        return {"type": "tool", "name": str(function["name"])}
    raise BadRequest("tool_choice must be auto, required, none or a named function", param="tool_choice")


def _dropped_fields(request: ChatCompletionRequest) -> list[str]:
    """Fields of the request that the Messages API has no place for (names only, never values)."""
    names = set(request.passthrough())
    if request.response_format is not None:
        names.add("response_format")
    if request.n not in (None, 1):
        names.add("n")
    if request.tool_choice is not None and not request.tools:
        names.add("tool_choice")
    return sorted(names)


def to_upstream(call: ChatCall) -> dict[str, Any]:
    """The upstream JSON body; fields Anthropic does not know are dropped (and named at DEBUG)."""
    request = call.request
    body: dict[str, Any] = {"model": call.model, "max_tokens": call.max_tokens}
    in_place = request.anthropic is not None
    prompt = request.messages[: _first_turn(request.messages)] if in_place else request.messages
    if system := _system(prompt):
        body["system"] = system
    body["messages"] = _messages(request.messages, in_place)
    optional = {"temperature": request.temperature, "top_p": request.top_p}
    body.update({k: v for k, v in optional.items() if v is not None})
    if request.stop_list:
        body["stop_sequences"] = request.stop_list
    if request.tools:
        body["tools"] = [_tool(tool) for tool in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = _tool_choice(request.tool_choice)
    if request.user:
        body["metadata"] = {"user_id": request.user}
    body["stream"] = call.stream
    body.update(native_fields(request.anthropic, body))
    if dropped := _dropped_fields(request):
        logger.debug("%s: fields not sent to the Messages API: %s", call.provider, ", ".join(dropped))
    return body


def _finish(reason: Any) -> Finish | None:
    if not reason:
        return None
    return Finish(STOP_REASONS.get(str(reason), "stop"))


def _prompt_tokens(usage: dict[str, Any]) -> int:
    """Input tokens, cache writes and cache reads included (all of them are billed as prompt)."""
    return sum(token_count(usage.get(name)) for name in _PROMPT_USAGE_FIELDS)


def usage_of(usage: dict[str, Any]) -> Usage:
    """A Messages ``usage`` object -> tollgate's (prompt tokens with the cache reads and writes in them;
    the writes' 1-hour part from ``cache_creation.ephemeral_1h_input_tokens``, capped at the writes)."""
    written = token_count(usage.get(_CACHE_WRITE))
    creation = usage.get("cache_creation")
    one_hour = token_count(creation.get("ephemeral_1h_input_tokens")) if isinstance(creation, dict) else 0
    return Usage(
        _prompt_tokens(usage),
        token_count(usage.get("output_tokens")),
        cached_tokens=token_count(usage.get(_CACHE_READ)),
        cache_write_tokens=written,
        cache_write_1h_tokens=min(one_hour, written),
    )


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def error_for_event(payload: dict[str, Any], provider: str = "claude") -> TollgateError:
    """An Anthropic error object (``{"type": "error", "error": {...}}``) -> tollgate error, by type."""
    error = payload["error"] if isinstance(payload.get("error"), dict) else {}
    kind = str(error.get("type") or "unknown_error")
    message = str(error.get("message") or "no message")[:MAX_MESSAGE]
    return ERROR_TYPES.get(kind, UpstreamError)(f"{provider} {kind}: {message}")


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
        message = payload.get("message") or {}
        self._usage = usage_of(message.get("usage") or {})
        return [ResponseMeta(model=message.get("model"), upstream_id=message.get("id"))]

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
        )
        finish = _finish((payload.get("delta") or {}).get("stop_reason"))
        return [finish] if finish else []

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


class AnthropicProvider(HTTPProvider):
    """The Anthropic Messages protocol; ``anthropic-beta`` is the client's own (Messages clients only)."""

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient) -> None:
        super().__init__(
            config,
            client,
            url=endpoint(config),
            headers=headers(config),
            to_upstream=to_upstream,
            parse_response=parse_response,
            parse_stream=lambda events: parse_stream(events, config.name),
            call_headers=lambda call: beta_headers(call.request.anthropic),
        )

    async def count_tokens(self, call: ChatCall) -> int | None:
        """Anthropic's own count (``/messages/count_tokens``)."""
        url = f"{self.config.base_url}/messages/count_tokens"
        body = count_body(to_upstream(call))
        payload = await self.post_json(url, body, beta_headers(call.request.anthropic))
        count = payload.get("input_tokens")
        return count if isinstance(count, int) else None
