"""Anthropic Messages request -> the internal ``ChatCompletionRequest`` (``to_chat``), for POST /v1/messages
and /v1/messages/count_tokens.

What the OpenAI shape has no place for rides along for the adapters that can use it, in fields that are
never dumped: thinking blocks with their signatures, ``cache_control`` marks on parts, tool results and
tools, tools and turns with blocks tollgate does not translate (server tools, documents) as the client
sent them (a web search tool with a ``max_uses``, which bounds its per-search fee); and the top-level
Anthropic fields and the client's betas as ``AnthropicOptions`` (``request.anthropic``). System turns
inside ``messages`` stay in place; each adapter decides where they go.

Pure functions only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .. import tool_fees
from ..anthropic_tables import TOOL_CHOICES
from ..errors import BadRequest
from ..schemas.anthropic import (
    Base64Source,
    ContentBlock,
    ImageBlock,
    MessageParam,
    MessagesRequest,
    OtherBlock,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolChoice,
    ToolParam,
    ToolResultBlock,
    ToolUseBlock,
)
from ..schemas.native import AnthropicOptions
from ..schemas.openai import (
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
from ..schemas.openai import ThinkingBlock as InternalThinking
from . import search_bound

# Anthropic tool_choice type -> OpenAI tool_choice (the inverse of anthropic_tables.TOOL_CHOICES)
CHOICE_TYPES: dict[str, str] = {anthropic: openai for openai, anthropic in TOOL_CHOICES.items()}


def _image_url(block: ImageBlock) -> str:
    source = block.source
    if isinstance(source, Base64Source):
        return f"data:{source.media_type};base64,{source.data}"
    return source.url


def _tool_message(block: ToolResultBlock) -> Message:
    text = block.text()
    if block.is_error:
        text = f"Error: {text}" if text else "Error"
    native = None if block.only_text() or not isinstance(block.content, list) else block.content
    if block.is_error and native is None and block.content:  # Anthropic: as sent, without the "Error: "
        native = (
            block.content if isinstance(block.content, list) else [{"type": "text", "text": block.content}]
        )
    return Message(
        role="tool",
        tool_call_id=block.tool_use_id,
        content=text,
        cache_control=block.cache_control,
        tool_content=native,
        tool_error=bool(block.is_error),
    )


def _text_part(block: TextBlock) -> TextPart:
    return TextPart(type="text", text=block.text, cache_control=block.cache_control)


def _user_content(parts: list[ContentPart]) -> str | list[ContentPart]:
    """One plain text part becomes a string (every upstream reads that); anything else stays a list."""
    if len(parts) == 1 and isinstance(parts[0], TextPart) and parts[0].cache_control is None:
        return parts[0].text
    return parts


def _native(blocks: Sequence[ContentBlock]) -> list[dict[str, Any]] | None:
    """A turn's blocks as sent, when one of them has no OpenAI counterpart (for an Anthropic upstream)."""
    if not any(isinstance(block, OtherBlock) for block in blocks):
        return None
    return [block.model_dump(exclude_none=not isinstance(block, OtherBlock)) for block in blocks]


def _user(message: MessageParam, param: str) -> list[Message]:
    """Tool results become ``tool`` messages (first, as Anthropic requires them first); the rest one
    user message after them."""
    if isinstance(message.content, str):
        return [Message(role="user", content=message.content)]
    results: list[Message] = []
    parts: list[ContentPart] = []
    rest = [block for block in message.content if not isinstance(block, ToolResultBlock)]
    for j, block in enumerate(message.content):
        if isinstance(block, ToolResultBlock):
            results.append(_tool_message(block))
        elif isinstance(block, OtherBlock):
            continue  # in ``anthropic_content`` only
        elif isinstance(block, TextBlock):
            parts.append(_text_part(block))
        elif isinstance(block, ImageBlock):
            url = ImageURL(url=_image_url(block))
            parts.append(ImagePart(type="image_url", image_url=url, cache_control=block.cache_control))
        else:
            raise BadRequest(
                f"{block.type} blocks belong in assistant messages", param=f"{param}.content[{j}]"
            )
    if native := _native(rest):
        content = _user_content(parts) if parts else ""  # e.g. a document alone: nothing for the others
        return [*results, Message(role="user", content=content, anthropic_content=native)]
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
        elif isinstance(block, OtherBlock):
            continue  # in ``anthropic_content`` only
        else:
            raise BadRequest(
                f"{block.type} blocks are not allowed in assistant messages", param=f"{param}.content[{j}]"
            )
    return Message(
        role="assistant",
        content=_texts(texts),
        tool_calls=calls or None,
        thinking_blocks=thinking or None,
        anthropic_content=_native(message.content),
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


def _tool(tool: ToolParam, where: str) -> Tool:
    definition = FunctionDefinition(
        name=tool.name, description=tool.description, parameters=tool.input_schema
    )
    native = tool.model_dump(exclude_none=True)
    if tool_fees.anthropic_server(native.get("type")) == "web_search":
        native["max_uses"] = search_bound.bounded(native.get("max_uses"), f"{where}.max_uses")
    return Tool.model_construct(  # validated above; model_construct: the one way to set anthropic_tool
        type="function",
        function=definition,
        cache_control=tool.cache_control,
        anthropic_tool=native,
        anthropic_server_tool=tool.server,
    )


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
        "provider": request.provider,
        "session_id": request.session_id,
        "pool": request.pool,
    }
    if request.tools:
        fields["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(request.tools)]
    if request.tool_choice is not None:
        fields["tool_choice"] = _tool_choice(request.tool_choice)
        if request.tool_choice.disable_parallel_tool_use:
            fields["parallel_tool_calls"] = False  # an OpenAI pass-through field
    return ChatCompletionRequest.model_validate(fields).with_anthropic(options(request, betas))
