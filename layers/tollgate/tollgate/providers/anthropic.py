"""Anthropic Messages wire protocol (provider ``claude``, alias ``anthropic``).

The request side (``to_upstream``: pure) and the provider (the thin I/O); the answer side, whole or
streamed, is ``anthropic_response``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx

from ..anthropic_tables import TOOL_CHOICES
from ..config import ProviderConfig
from ..errors import BadRequest
from ..json_depth import MAX_JSON_DEPTH, too_deep
from ..schemas.openai import ChatCompletionRequest, ContentPart, ImagePart, Message, Tool, ToolCall
from .anthropic_native import beta_headers, count_body, native_fields, tool_block, with_cache_control
from .anthropic_response import parse_response, parse_stream
from .base import ChatCall
from .http_provider import HTTPProvider
from .images import is_remote, parse_data_url
from .turns import append_turn

logger = logging.getLogger(__name__)

_SYSTEM_ROLES = frozenset({"system", "developer"})

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


def _used_tools(messages: list[Block]) -> list[Block]:
    """A definition for each tool the history called, with an open schema."""
    names = [
        block["name"]
        for message in messages
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_use" and isinstance(block.get("name"), str)
    ]
    return [{"name": name, "input_schema": {"type": "object"}} for name in dict.fromkeys(names)]


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
    elif used := _used_tools(body["messages"]):  # tool blocks need their tools defined; none may be called
        body["tools"] = used
        body["tool_choice"] = {"type": "none"}
    if request.user:
        body["metadata"] = {"user_id": request.user}
    body["stream"] = call.stream
    body.update(native_fields(request.anthropic, body))
    if dropped := _dropped_fields(request):
        logger.debug("%s: fields not sent to the Messages API: %s", call.provider, ", ".join(dropped))
    return body


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
