"""The Anthropic Messages wire format as tollgate *serves* it (POST /v1/messages).

A Messages request is translated to the internal ``ChatCompletionRequest`` (``to_chat``), goes through
the one pipeline every model endpoint uses (routing, budget, session, audit), and the provider's typed
chunks come back as an Anthropic ``message`` object (``render_message``) or as Anthropic's SSE event
sequence (``AnthropicEncoder``). An Anthropic upstream behind the gateway is served through the same
translation: request -> internal request -> the Anthropic upstream adapter (``providers.anthropic``) ->
chunks -> Anthropic events; there is no second, pass-through path to keep in step.

Pure functions only; the HTTP handler and the error shape live in ``api.messages``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import msgspec

from .errors import BadRequest, TollgateError
from .lifecycle import Outcome
from .providers.anthropic import TOOL_CHOICES
from .providers.base import ChatCall, Chunk, Finish, TextDelta, ThinkingDelta, ToolCallDelta, Usage
from .schemas.anthropic import (
    Base64Source,
    ImageBlock,
    MessageParam,
    MessagesRequest,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolChoice,
    ToolParam,
    ToolResultBlock,
    ToolUseBlock,
)
from .schemas.native import AnthropicOptions
from .schemas.openai import (
    ChatCompletionRequest,
    ContentPart,
    FunctionCall,
    FunctionDefinition,
    ImagePart,
    ImageURL,
    Message,
    TextPart,
    Tool,
    ToolCall,
)
from .schemas.openai import ThinkingBlock as InternalThinking
from .streaming import ResponseBuilder
from .tokens import estimate_prompt_tokens

logger = logging.getLogger("tollgate.anthropic_wire")

# OpenAI finish reason -> Anthropic stop reason (the inverse of providers.anthropic.STOP_REASONS)
FINISH_TO_STOP: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
# Anthropic tool_choice type -> OpenAI tool_choice (the inverse of providers.anthropic.TOOL_CHOICES)
CHOICE_TYPES: dict[str, str] = {anthropic: openai for openai, anthropic in TOOL_CHOICES.items()}
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


# --- request: Anthropic -> internal -------------------------------------------------------------


def _image_url(block: ImageBlock) -> str:
    source = block.source
    if isinstance(source, Base64Source):
        return f"data:{source.media_type};base64,{source.data}"
    return source.url


def _tool_message(block: ToolResultBlock) -> Message:
    text = block.text()
    if block.is_error:
        text = f"Error: {text}" if text else "Error"
    return Message(
        role="tool", tool_call_id=block.tool_use_id, content=text, cache_control=block.cache_control
    )


def _text_part(block: TextBlock) -> TextPart:
    return TextPart(type="text", text=block.text, cache_control=block.cache_control)


def _user_content(parts: list[ContentPart]) -> str | list[ContentPart]:
    """One plain text part becomes a string (every upstream reads that); anything else stays a list."""
    if len(parts) == 1 and isinstance(parts[0], TextPart) and parts[0].cache_control is None:
        return parts[0].text
    return parts


def _user(message: MessageParam, param: str) -> list[Message]:
    """Tool results become ``tool`` messages (first, as Anthropic requires them first); the rest one
    user message after them."""
    if isinstance(message.content, str):
        return [Message(role="user", content=message.content)]
    results: list[Message] = []
    parts: list[ContentPart] = []
    for j, block in enumerate(message.content):
        if isinstance(block, ToolResultBlock):
            results.append(_tool_message(block))
        elif isinstance(block, TextBlock):
            parts.append(_text_part(block))
        elif isinstance(block, ImageBlock):
            url = ImageURL(url=_image_url(block))
            parts.append(ImagePart(type="image_url", image_url=url, cache_control=block.cache_control))
        else:
            raise BadRequest(
                f"{block.type} blocks belong in assistant messages", param=f"{param}.content[{j}]"
            )
    return results + ([Message(role="user", content=_user_content(parts))] if parts else [])


def _tool_call(block: ToolUseBlock) -> ToolCall:
    arguments = json.dumps(block.input, ensure_ascii=False)
    return ToolCall(id=block.id, function=FunctionCall(name=block.name, arguments=arguments))


def _texts(texts: list[TextBlock]) -> str | list[ContentPart] | None:
    """Text blocks as one string, or as parts when one carries ``cache_control`` (kept for the upstream)."""
    if any(block.cache_control for block in texts):
        return [_text_part(block) for block in texts]
    return "".join(block.text for block in texts) or None


def _assistant(message: MessageParam, param: str) -> Message:
    """Thinking blocks (signature and all, in order), text, and tool calls."""
    if isinstance(message.content, str):
        return Message(role="assistant", content=message.content)
    texts: list[TextBlock] = []
    calls: list[ToolCall] = []
    thinking: list[InternalThinking] = []
    for j, block in enumerate(message.content):
        if isinstance(block, TextBlock):
            texts.append(block)
        elif isinstance(block, ToolUseBlock):
            calls.append(_tool_call(block))
        elif isinstance(block, ThinkingBlock | RedactedThinkingBlock):
            thinking.append(InternalThinking.model_validate(block.model_dump()))
        else:
            raise BadRequest(
                f"{block.type} blocks are not allowed in assistant messages", param=f"{param}.content[{j}]"
            )
    return Message(
        role="assistant", content=_texts(texts), tool_calls=calls or None, thinking=thinking or None
    )


def _system(content: str | list[Any], param: str) -> Message | None:
    """A system prompt (top-level, or a system turn inside ``messages``): text blocks only."""
    if isinstance(content, str):
        return Message(role="system", content=content) if content else None
    for j, block in enumerate(content):
        if not isinstance(block, TextBlock):
            raise BadRequest("system content must be text blocks", param=f"{param}[{j}]")
    text = _texts(content)
    if isinstance(text, str):  # blocks without cache_control: joined, as one system prompt
        text = "\n\n".join(block.text for block in content)
    return Message(role="system", content=text) if text else None


def _messages(request: MessagesRequest) -> list[Message]:
    """System turns inside ``messages`` stay in place; each upstream adapter decides where they go."""
    messages: list[Message] = []
    if request.system and (system := _system(request.system, "system")):
        messages.append(system)
    for i, message in enumerate(request.messages):
        if message.role == "user":
            messages.extend(_user(message, f"messages[{i}]"))
        elif message.role == "system":
            if system := _system(message.content, f"messages[{i}].content"):
                messages.append(system)
        else:
            messages.append(_assistant(message, f"messages[{i}]"))
    if not any(m.role != "system" for m in messages):
        raise BadRequest("at least one non-empty message is required", param="messages")
    return messages


def _tool(tool: ToolParam) -> Tool:
    definition = FunctionDefinition(
        name=tool.name, description=tool.description, parameters=tool.input_schema
    )
    native = tool.model_dump(exclude_none=True)
    return Tool(function=definition, cache_control=tool.cache_control, native=native)


def _tool_choice(choice: ToolChoice) -> str | dict[str, Any]:
    if choice.type != "tool":
        return CHOICE_TYPES[choice.type]
    if not choice.name:
        raise BadRequest("tool_choice of type tool needs a name", param="tool_choice.name")
    return {"type": "function", "function": {"name": choice.name}}


def options(request: MessagesRequest, betas: tuple[str, ...]) -> AnthropicOptions:
    """What has no OpenAI counterpart, for the adapters that can use it."""
    return AnthropicOptions(
        thinking=request.thinking,
        output_config=request.output_config,
        context_management=request.context_management,
        metadata=request.metadata.model_dump(exclude_none=True) if request.metadata else None,
        betas=betas,
        extra=dict(request.model_extra or {}),
    )


def to_chat(request: MessagesRequest, betas: tuple[str, ...] = ()) -> ChatCompletionRequest:
    """A validated Messages request -> the internal chat request (extensions carried over); what has no
    OpenAI counterpart rides along as ``AnthropicOptions`` (``request.anthropic``)."""
    fields: dict[str, Any] = {
        "model": request.model,
        "messages": _messages(request),
        "max_tokens": request.max_tokens,
        "stream": request.stream,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": request.stop_sequences or None,
        "user": request.metadata.user_id if request.metadata else None,
        "provider": request.provider,
        "session_id": request.session_id,
        "pool": request.pool,
    }
    if request.tools:
        fields["tools"] = [_tool(tool) for tool in request.tools]
    if request.tool_choice is not None:
        fields["tool_choice"] = _tool_choice(request.tool_choice)
        if request.tool_choice.disable_parallel_tool_use:
            fields["parallel_tool_calls"] = False  # an OpenAI pass-through field
    return ChatCompletionRequest.model_validate(fields).with_anthropic(options(request, betas))


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
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        value = None
    if not isinstance(value, dict):
        logger.warning("tool call %s: arguments are not a JSON object; sent as {}", name)
        return {}
    return value


def usage_body(usage: Usage) -> dict[str, int]:
    return {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}


def thinking_blocks(deltas: list[ThinkingDelta]) -> list[Block]:
    """Thinking deltas -> whole thinking / redacted_thinking blocks, by index (signature unchanged)."""
    blocks: dict[int, Block] = {}
    for delta in deltas:
        if delta.redacted is not None:
            blocks[delta.index] = {"type": "redacted_thinking", "data": delta.redacted}
            continue
        block = blocks.setdefault(delta.index, {"type": "thinking", "thinking": "", "signature": ""})
        block["thinking"] += delta.text
        block["signature"] += delta.signature
    return [blocks[index] for index in sorted(blocks)]


def content_blocks(builder: ResponseBuilder) -> list[Block]:
    blocks: list[Block] = thinking_blocks(builder.thinking)
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
        usage = {"input_tokens": estimate_prompt_tokens(m.text() for m in messages), "output_tokens": 0}
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
        if isinstance(chunk, Finish):
            self.finish = chunk.reason
        return []

    def end(self, builder: ResponseBuilder, outcome: Outcome, extension: dict[str, Any]) -> list[bytes]:
        usage = outcome.usage or builder.final_usage()
        delta = {"stop_reason": stop_reason(self.finish, bool(self.tool_blocks)), "stop_sequence": None}
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
