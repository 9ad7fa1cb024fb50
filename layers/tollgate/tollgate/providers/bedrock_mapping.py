"""Amazon Bedrock Converse wire protocol: pure functions, no I/O and no boto3 import.

``to_converse`` builds the keyword arguments of ``client.converse`` / ``client.converse_stream``;
``parse_response`` and ``parse_stream_event`` turn Converse output into tollgate's typed chunks (an
exception frame raises its tollgate error: ``bedrock_errors``).

Choices worth knowing:
- ``tool_choice: "none"`` has no Converse equivalent: ``toolConfig`` is left out, unless the history
  already holds tool calls or results (Converse then requires ``toolConfig``), in which case the tools are
  sent without a ``toolChoice`` (the model may still call one). A history with tool calls and no tools
  given (a summary of a finished agent run, ``/v1/responses/compact``) declares the tools it used, with
  an open schema, for the same reason.
- ``response_format``, ``user`` and unknown pass-through fields are dropped (a debug line names the fields).
- ``prompt_tokens`` counts cache reads and writes too, as OpenAI's ``prompt_tokens`` does.
- Model ids are passed unchanged: base ids, inference profiles (``us.``/``eu.``/``apac.``/``global.``)
  and ARNs alike.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import (
    BadRequest,
    UpstreamError,
)
from ..json_depth import MAX_JSON_DEPTH, too_deep
from ..schemas.openai import ImagePart, Message, Tool
from .base import (
    ChatCall,
    Chunk,
    Finish,
    FinishReason,
    ResponseMeta,
    TextDelta,
    ToolCallDelta,
    Usage,
    token_count,
)
from .bedrock_errors import ERRORS, error_for_code, message_of
from .bedrock_native import (
    additional_fields,
    cache_point,
    is_claude,
    reasoning_blocks,
    system_cache_control,
    thinking_delta,
    without_cache_points,
)
from .images import is_remote, parse_data_url
from .turns import Turn, append_turn

logger = logging.getLogger(__name__)

# Converse reports inputTokens without the cache reads and writes (as Anthropic does): the prompt is all 3
PROMPT_TOKEN_FIELDS = ("inputTokens", "cacheReadInputTokens", "cacheWriteInputTokens")
IMAGE_FORMATS = frozenset({"png", "jpeg", "gif", "webp"})
EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

Block = dict[str, Any]

# ---------------------------------------------------------------------------------------------- request


def to_converse(call: ChatCall) -> dict[str, Any]:
    """Keyword arguments for ``converse`` / ``converse_stream``."""
    request = call.request
    _log_dropped(call)
    system, turns = _conversation(request.messages, is_claude(call.model))
    kwargs: dict[str, Any] = {
        "modelId": call.model,
        "messages": turns,
        "inferenceConfig": _inference_config(call),
    }
    if system:
        kwargs["system"] = system
    tool_config = _tool_config(request.function_tools(), request.tool_choice, turns)
    if tool_config:
        kwargs["toolConfig"] = tool_config
    if fields := additional_fields(call):  # a Messages client's thinking, effort and betas
        kwargs["additionalModelRequestFields"] = fields
    return without_cache_points(kwargs, call.model)


def _log_dropped(call: ChatCall) -> None:
    request = call.request
    dropped = sorted(call.passthrough())
    dropped += [name for name in ("response_format", "user") if getattr(request, name) is not None]
    if dropped:
        logger.debug("bedrock: dropping fields Converse does not take: %s", ", ".join(sorted(dropped)))


def _inference_config(call: ChatCall) -> dict[str, Any]:
    request = call.request
    config: dict[str, Any] = {"maxTokens": call.max_tokens}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.stop_list:
        config["stopSequences"] = request.stop_list
    return config


def _conversation(messages: Iterable[Message], claude: bool = False) -> tuple[list[Block], list[Turn]]:
    """System blocks and the alternating user/assistant turns Converse requires (``claude``: the model
    takes a tool result's ``status``)."""
    system: list[Block] = []
    turns: list[Turn] = []
    for index, message in enumerate(messages):
        if message.role in ("system", "developer"):  # mid-conversation ones too: Converse has no place
            text = message.text()
            if text:
                system.extend(cache_point([{"text": text}], system_cache_control(message)))
            continue
        role = "assistant" if message.role == "assistant" else "user"
        append_turn(turns, role, _blocks(message, index, claude))
    return system, turns


def _blocks(message: Message, index: int, claude: bool) -> list[Block]:
    if message.role == "tool":
        return cache_point([_tool_result(message, index, claude)], message.cache_control)
    blocks = reasoning_blocks(message) + _content_blocks(message, index)
    for position, tool_call in enumerate(message.tool_calls or []):
        param = f"messages[{index}].tool_calls[{position}].function.arguments"
        tool_input = _tool_input(tool_call.function.arguments, param)
        blocks.append(
            {"toolUse": {"toolUseId": tool_call.id, "name": tool_call.function.name, "input": tool_input}}
        )
    return blocks


def _content_blocks(message: Message, index: int) -> list[Block]:
    content = message.content
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[Block] = []
    for position, part in enumerate(content):
        if isinstance(part, ImagePart):
            param = f"messages[{index}].content[{position}].image_url"
            blocks.extend(cache_point([_image_block(part.image_url.url, param)], part.cache_control))
        elif part.text:
            blocks.extend(cache_point([{"text": part.text}], part.cache_control))
    return blocks


def _image_block(url: str, param: str) -> Block:
    if is_remote(url):
        message = "tollgate does not fetch image URLs for bedrock; send the image inline as a data: URL"
        raise BadRequest(message, param=param)
    image = parse_data_url(url, param=param)
    if image.format not in IMAGE_FORMATS:
        message = f"bedrock accepts png, jpeg, gif and webp images, not {image.media_type}"
        raise BadRequest(message, param=param)
    return {"image": {"format": image.format, "source": {"bytes": image.raw()}}}


def _tool_input(arguments: str, param: str) -> dict[str, Any]:
    if too_deep(arguments):
        raise BadRequest(f"tool call arguments nest deeper than {MAX_JSON_DEPTH} levels", param=param)
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError as exc:
        raise BadRequest("tool call arguments must be a JSON object", param=param) from exc
    if not isinstance(value, dict):
        raise BadRequest("tool call arguments must be a JSON object", param=param)
    return value


def _tool_result(message: Message, index: int, claude: bool) -> Block:
    """Only Claude models on Bedrock take ``status``; the others read the "Error: " the text starts with."""
    if not message.tool_call_id:
        raise BadRequest("a tool message needs tool_call_id", param=f"messages[{index}].tool_call_id")
    result: Block = {"toolUseId": message.tool_call_id, "content": [{"text": message.text()}]}
    if claude and message.tool_error:
        result["status"] = "error"
    return {"toolResult": result}


def _has_tool_blocks(turns: Iterable[Turn]) -> bool:
    return any("toolUse" in block or "toolResult" in block for turn in turns for block in turn["content"])


def _used_tools(turns: Iterable[Turn]) -> list[Block]:
    """A spec for each tool the history called (Converse refuses tool blocks without a ``toolConfig``)."""
    names = [block["toolUse"]["name"] for turn in turns for block in turn["content"] if "toolUse" in block]
    return [
        {"toolSpec": {"name": name, "inputSchema": {"json": EMPTY_SCHEMA}}} for name in dict.fromkeys(names)
    ]


def _tool_config(tools: list[Tool] | None, choice: Any, turns: list[Turn]) -> dict[str, Any] | None:
    if not tools:
        used = _used_tools(turns)
        return {"tools": used} if used else None
    if choice == "none" and not _has_tool_blocks(turns):
        return None
    config: dict[str, Any] = {
        "tools": [b for tool in tools for b in cache_point([_tool_spec(tool)], tool.cache_control)]
    }
    tool_choice = _tool_choice(choice)
    if tool_choice is not None:
        config["toolChoice"] = tool_choice
    return config


def _tool_spec(tool: Tool) -> Block:
    function = tool.function
    schema = function.parameters or EMPTY_SCHEMA
    spec: dict[str, Any] = {"name": function.name, "inputSchema": {"json": schema}}
    if function.description:
        spec["description"] = function.description
    return {"toolSpec": spec}


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None or choice == "auto":
        return {"auto": {}}
    if choice == "required":
        return {"any": {}}
    if choice == "none":
        return None
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not name:
        raise BadRequest(
            'tool_choice must name a function: {"type": "function", "function": {"name": ...}}',
            param="tool_choice",
        )
    return {"tool": {"name": name}}


# --------------------------------------------------------------------------------------------- response


def response_meta(response: Mapping[str, Any], model: str | None) -> ResponseMeta:
    """Bedrock has no response id; the AWS request id (``x-amzn-RequestId``) stands in for it."""
    metadata = response.get("ResponseMetadata") or {}
    return ResponseMeta(model=model, upstream_id=metadata.get("RequestId"))


def finish(stop_reason: Any) -> Finish:
    return Finish(STOP_REASONS.get(str(stop_reason), "stop"))


def usage(raw: Mapping[str, Any] | None) -> Usage | None:
    if not raw:
        return None
    prompt = sum(token_count(raw.get(key)) for key in PROMPT_TOKEN_FIELDS)
    written = token_count(raw.get("cacheWriteInputTokens"))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=token_count(raw.get("outputTokens")),
        cached_tokens=token_count(raw.get("cacheReadInputTokens")),
        cache_write_tokens=written,
        cache_write_1h_tokens=min(_one_hour_writes(raw.get("cacheDetails")), written),
    )


def _one_hour_writes(details: Any) -> int:
    """The cache writes with a 1-hour TTL: ``cacheDetails`` is ``[{"ttl": "1h"|"5m", "inputTokens": N}]``."""
    if not isinstance(details, list):
        return 0
    return sum(
        token_count(d.get("inputTokens")) for d in details if isinstance(d, Mapping) and d.get("ttl") == "1h"
    )


def parse_response(response: Mapping[str, Any], model: str | None = None) -> list[Chunk]:
    """A whole Converse response -> the same typed chunks a stream would give."""
    message = (response.get("output") or {}).get("message")
    if not isinstance(message, Mapping):
        raise UpstreamError("bedrock answered without an output message")
    chunks: list[Chunk] = [response_meta(response, model)]
    tool_index = thinking = 0
    for block in message.get("content") or []:
        if "reasoningContent" in block and (piece := thinking_delta(thinking, block["reasoningContent"])):
            chunks.append(piece)
            thinking += 1
        elif block.get("text"):
            chunks.append(TextDelta(block["text"]))
        elif "toolUse" in block:
            tool = block["toolUse"]
            arguments = json.dumps(tool.get("input") or {})
            chunks.append(ToolCallDelta(tool_index, tool.get("toolUseId"), tool.get("name"), arguments))
            tool_index += 1
    chunks.append(finish(response.get("stopReason")))
    counted = usage(response.get("usage"))
    if counted:
        chunks.append(counted)
    return chunks


@dataclass(slots=True)
class StreamState:
    """Per-stream state: which content block is which tool call (indexes count toolUse blocks only)."""

    tool_indexes: dict[int, int] = field(default_factory=dict)
    thinking_indexes: dict[int, int] = field(default_factory=dict)  # block -> thinking index

    def tool_index(self, block: int) -> int:
        if block not in self.tool_indexes:
            self.tool_indexes[block] = len(self.tool_indexes)
        return self.tool_indexes[block]


def _on_block_start(body: Mapping[str, Any], state: StreamState) -> list[Chunk]:
    tool = (body.get("start") or {}).get("toolUse")
    if not tool:
        return []
    index = state.tool_index(int(body.get("contentBlockIndex", 0)))
    return [ToolCallDelta(index, id=tool.get("toolUseId"), name=tool.get("name"))]


def _on_block_delta(body: Mapping[str, Any], state: StreamState) -> list[Chunk]:
    delta = body.get("delta") or {}
    if delta.get("text"):
        return [TextDelta(delta["text"])]
    if "reasoningContent" in delta:
        block = int(body.get("contentBlockIndex", 0))
        index = state.thinking_indexes.setdefault(block, len(state.thinking_indexes))
        piece = thinking_delta(index, delta["reasoningContent"])
        return [piece] if piece else []
    tool = delta.get("toolUse")
    if tool and tool.get("input"):
        index = state.tool_index(int(body.get("contentBlockIndex", 0)))
        return [ToolCallDelta(index, arguments=tool["input"])]
    return []


def _on_message_stop(body: Mapping[str, Any], state: StreamState) -> list[Chunk]:
    return [finish(body.get("stopReason"))]


def _on_metadata(body: Mapping[str, Any], state: StreamState) -> list[Chunk]:
    counted = usage(body.get("usage"))
    return [counted] if counted else []


_EVENT_HANDLERS: dict[str, Callable[[Mapping[str, Any], StreamState], list[Chunk]]] = {
    "contentBlockStart": _on_block_start,
    "contentBlockDelta": _on_block_delta,
    "messageStop": _on_message_stop,
    "metadata": _on_metadata,
}


def parse_stream_event(event: Mapping[str, Any], state: StreamState) -> list[Chunk]:
    """One ConverseStream event (``{"contentBlockDelta": {...}}``) -> typed chunks; exception events raise."""
    chunks: list[Chunk] = []
    for name, body in event.items():
        if name.lower() in ERRORS:
            raise error_for_code(name, message_of(body))
        handler = _EVENT_HANDLERS.get(name)
        if handler is not None and isinstance(body, Mapping):
            chunks.extend(handler(body, state))
    return chunks
