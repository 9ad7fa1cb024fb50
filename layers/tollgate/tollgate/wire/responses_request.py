"""A Responses API request (``POST /v1/responses``) -> the internal chat request.

Input items become chat messages: ``message`` items (input_text / output_text / input_image parts),
``function_call`` items become an assistant message's tool calls, ``function_call_output`` items tool
messages, ``custom_tool_call`` / ``custom_tool_call_output`` the same through a one-argument function;
``reasoning`` items (and the hosted tools' call items) carry nothing another upstream can read and are
dropped. Any other item type is a 400.

Tools: ``function`` as is; ``custom`` (freeform) tools become a function with one string argument
``input``; a ``namespace``'s functions are flattened to ``<namespace>__<name>`` so the model sees callable
functions, and ``ToolOrigin`` maps an answer back. Hosted tools (``web_search``, ``file_search``, ...) that
no upstream behind tollgate runs are dropped with a debug log, so clients that always send them keep
working.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import BadRequest
from ..schemas.limits import MAX_OUTPUT_TOKENS, ModelName
from ..schemas.openai import (
    NAME_PATTERN,
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
from ..schemas.responses import ToolOrigin
from . import compaction

logger = logging.getLogger("tollgate.wire.responses")

NAMESPACE_SEPARATOR = "__"
MAX_TOOL_NAME = 64  # OpenAI, Anthropic and Bedrock all refuse longer function names
# items a client may send back that only OpenAI's hosted tools produce: nothing to translate
HOSTED_ITEMS = frozenset(
    {
        "web_search_call",
        "file_search_call",
        "computer_call",
        "computer_call_output",
        "code_interpreter_call",
        "image_generation_call",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "mcp_call",
        "tool_search_call",
        "tool_search_output",
    }
)
_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "summary_text"})
_ROLES = frozenset({"user", "assistant", "system", "developer"})


class ResponsesRequest(BaseModel):
    """The body of POST /v1/responses; fields tollgate has no use for are ignored. Numbers and booleans
    are strict and bounded as on the chat endpoint (``schemas.limits``): a 400 naming the field."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    model: ModelName | None = None
    input: str | list[Any]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = Field(None, strict=True)
    max_output_tokens: int | None = Field(None, strict=True, ge=1, le=MAX_OUTPUT_TOKENS)
    temperature: float | None = Field(None, strict=True, ge=0, le=2)
    top_p: float | None = Field(None, strict=True, ge=0, le=1)
    reasoning: dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    stream: bool = Field(False, strict=True)
    store: bool = Field(True, strict=True)
    previous_response_id: str | None = Field(None, min_length=1, max_length=200)
    user: str | None = None
    background: bool | None = Field(None, strict=True)
    # tollgate extensions (DESIGN.md §4)
    provider: str | None = None
    pool: str | None = Field(None, min_length=1, max_length=64, pattern=NAME_PATTERN)

    def offered_tools(self) -> list[Any]:
        """The tools the model may call natively: ``tools``, and those a ``tool_search_output`` input item
        loads (a hosted tool there runs, and bills, as one in ``tools`` does)."""
        offered: list[Any] = list(self.tools or [])
        for item in self.input if isinstance(self.input, list) else []:
            loaded = item.get("tools") if isinstance(item, dict) else None
            if isinstance(loaded, list) and item.get("type") == "tool_search_output":
                offered += loaded
        return offered


# --- tools ----------------------------------------------------------------------------------------


def _function(tool: dict[str, Any], name: str, param: str) -> Tool:
    try:
        definition = FunctionDefinition(
            name=name,
            description=tool.get("description"),
            parameters=tool.get("parameters"),
            strict=tool.get("strict"),
        )
    except ValidationError as exc:
        raise BadRequest(f"{param}: not a valid function tool", param=param) from exc
    return Tool(function=definition)


def _custom(tool: dict[str, Any], name: str, param: str) -> Tool:
    """A freeform tool as a function whose one string argument ``input`` is the tool's whole input."""
    described = str(tool.get("description") or "")
    grammar = tool.get("format") or {}
    if isinstance(grammar, dict) and grammar.get("type") == "grammar" and grammar.get("definition"):
        syntax = grammar.get("syntax", "grammar")
        described += f"\nThe input must follow this {syntax} grammar:\n{grammar['definition']}"
    schema = {
        "type": "object",
        "properties": {"input": {"type": "string", "description": "the tool's whole input, verbatim"}},
        "required": ["input"],
    }
    return _function({"description": described.strip() or None, "parameters": schema}, name, param)


def _tool_name(tool: dict[str, Any], param: str) -> str:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{param}.name is required", param=f"{param}.name")
    return name


def namespaced(namespace: str, name: str) -> str:
    """``<namespace>__<name>``; past the upstreams' 64-character limit, shortened with a hash suffix (the
    same for the same pair, so a call the client sends back maps to the same function)."""
    flat = f"{namespace}{NAMESPACE_SEPARATOR}{name}"
    if len(flat) <= MAX_TOOL_NAME:
        return flat
    digest = hashlib.sha256(flat.encode()).hexdigest()[:8]
    return f"{flat[: MAX_TOOL_NAME - 9]}_{digest}"


def _type_of(node: dict[str, Any], param: str, default: str | None = None) -> str | None:
    """An item's, part's or tool's ``type``: a string or absent (``default``); anything else is a 400."""
    kind = node.get("type", default)
    if kind is not None and not isinstance(kind, str):
        raise BadRequest(f"{param}.type must be a string", param=f"{param}.type")
    return kind


def _namespace_tools(tool: dict[str, Any], param: str) -> list[dict[str, Any]]:
    inner = tool.get("tools") or []
    if not isinstance(inner, list):
        raise BadRequest(f"{param}.tools must be a list of tools", param=f"{param}.tools")
    for j, one in enumerate(inner):
        if not isinstance(one, dict):
            raise BadRequest(f"{param}.tools[{j}] must be an object", param=f"{param}.tools[{j}]")
    return inner


def convert_tools(tools: list[dict[str, Any]]) -> tuple[list[Tool], dict[str, ToolOrigin]]:
    converted: list[Tool] = []
    origins: dict[str, ToolOrigin] = {}
    for i, tool in enumerate(tools):
        param = f"tools[{i}]"
        kind = _type_of(tool, param)
        if kind in ("function", "custom"):
            name = _tool_name(tool, param)
            make = _function if kind == "function" else _custom
            converted.append(make(tool, name, param))
            origins[name] = ToolOrigin(kind=kind, name=name)
        elif kind == "namespace":
            namespace = _tool_name(tool, param)
            for j, inner in enumerate(_namespace_tools(tool, param)):
                inner_param = f"{param}.tools[{j}]"
                name = _tool_name(inner, inner_param)
                flat = namespaced(namespace, name)
                inner_kind = "custom" if _type_of(inner, inner_param) == "custom" else "function"
                make = _custom if inner_kind == "custom" else _function
                converted.append(make(inner, flat, inner_param))
                origins[flat] = ToolOrigin(kind=inner_kind, name=name, namespace=namespace)
        else:
            logger.debug("responses: dropped tool of type %s (no upstream behind tollgate runs it)", kind)
    return converted, origins


def convert_tool_choice(choice: str | dict[str, Any] | None, origins: dict[str, ToolOrigin]) -> Any:
    """Responses' tool_choice -> chat's; ``None`` when no tool is left to choose from."""
    if choice is None or not origins:
        return None
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise BadRequest(f"tool_choice: unknown value {choice!r}", param="tool_choice")
        return choice
    kind = choice.get("type")
    if kind in ("function", "custom"):
        name = flat_name(str(choice.get("name") or ""), choice.get("namespace"), origins)
        if name not in origins:
            raise BadRequest(f"tool_choice names an unknown tool {name!r}", param="tool_choice.name")
        return {"type": "function", "function": {"name": name}}
    if kind == "allowed_tools":
        return "required" if choice.get("mode") == "required" else "auto"
    return "auto"  # a hosted tool was chosen; it is not there


def flat_name(name: str, namespace: Any, origins: dict[str, ToolOrigin]) -> str:
    """The name the upstream knows for a call the client sends back (namespaced or bare)."""
    if namespace:
        return namespaced(str(namespace), name)
    if name in origins:
        return name
    matches = [flat for flat, origin in origins.items() if origin.name == name]
    return matches[0] if len(matches) == 1 else name


# --- input items ----------------------------------------------------------------------------------


def _part(part: Any, param: str) -> ContentPart:
    if isinstance(part, str):
        return TextPart(type="text", text=part)
    if not isinstance(part, dict):
        raise BadRequest(f"{param} must be an object", param=param)
    kind = _type_of(part, param)
    if kind in _TEXT_PARTS:
        return TextPart(type="text", text=str(part.get("text") or ""))
    if kind == "refusal":
        return TextPart(type="text", text=str(part.get("refusal") or ""))
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise BadRequest(f"{param}: only images given by image_url are supported", param=param)
        detail = part.get("detail") if part.get("detail") in ("auto", "low", "high") else None
        return ImagePart(type="image_url", image_url=ImageURL(url=url, detail=detail))
    raise BadRequest(f"{param}: content part type {kind!r} is not supported", param=f"{param}.type")


def _content(content: Any, param: str) -> list[ContentPart]:
    if isinstance(content, str):
        return [TextPart(type="text", text=content)]
    if not isinstance(content, list):
        raise BadRequest(f"{param} must be a string or a list of content parts", param=param)
    return [_part(part, f"{param}[{j}]") for j, part in enumerate(content)]


def _text(parts: list[ContentPart]) -> str:
    return "".join(p.text for p in parts if isinstance(p, TextPart))


def _message(item: dict[str, Any], param: str) -> Message:
    role = item.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        raise BadRequest(
            f"{param}.role must be one of user, assistant, system, developer", param=f"{param}.role"
        )
    parts = _content(item.get("content"), f"{param}.content")
    if role == "user" and any(isinstance(p, ImagePart) for p in parts):
        return Message(role="user", content=parts)
    return Message(role=role, content=_text(parts))


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(str(p.get("text") or "") for p in output if isinstance(p, dict))
    return json.dumps(output, ensure_ascii=False)


class _Items:
    """Folds items into messages: consecutive calls join the assistant message before them."""

    def __init__(self, origins: dict[str, ToolOrigin]) -> None:
        self.origins = origins
        self.messages: list[Message] = []

    def call(self, item: dict[str, Any], param: str, arguments: str) -> None:
        call_id, name = item.get("call_id"), item.get("name")
        if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
            raise BadRequest(f"{param}: call_id and name are required", param=param)
        flat = flat_name(name, item.get("namespace"), self.origins)
        call = ToolCall(id=call_id, function=FunctionCall(name=flat, arguments=arguments))
        last = self.messages[-1] if self.messages else None
        if last is not None and last.role == "assistant":
            last.tool_calls = [*(last.tool_calls or []), call]
        else:
            self.messages.append(Message(role="assistant", content=None, tool_calls=[call]))

    def result(self, item: dict[str, Any], param: str, output: str) -> None:
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise BadRequest(f"{param}.call_id is required", param=f"{param}.call_id")
        self.messages.append(Message(role="tool", tool_call_id=call_id, content=output))

    def summary(self, item: dict[str, Any]) -> None:
        """tollgate's own compaction item is the summary, as a user message; another's (OpenAI's
        encrypted one) cannot be read and is dropped."""
        summary = compaction.summary_of(item)
        if summary is None:
            logger.debug("responses: dropped a compaction item that is not tollgate's")
        else:
            self.messages.append(Message(role="user", content=compaction.SUMMARY_PREFIX + summary))

    def add(self, item: Any, param: str) -> None:
        if not isinstance(item, dict):
            raise BadRequest(f"{param} must be an object", param=param)
        kind = _type_of(item, param, "message" if "role" in item else None)
        if kind == "message":
            self.messages.append(_message(item, param))
        elif kind == "function_call":
            self.call(item, param, str(item.get("arguments") or ""))
        elif kind == "custom_tool_call":
            self.call(item, param, json.dumps({"input": str(item.get("input") or "")}, ensure_ascii=False))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            self.result(item, param, _output_text(item.get("output")))
        elif kind == compaction.ITEM:
            self.summary(item)
        elif kind == "reasoning" or kind == compaction.TRIGGER or kind in HOSTED_ITEMS:
            logger.debug("responses: dropped input item of type %s", kind)
        elif kind == "item_reference":
            raise BadRequest(f"{param}: item_reference is not supported; send the item", param=param)
        else:
            raise BadRequest(f"{param}.type: unknown input item type {kind!r}", param=f"{param}.type")


def input_messages(request: ResponsesRequest, origins: dict[str, ToolOrigin]) -> list[Message]:
    if isinstance(request.input, str):
        return [Message(role="user", content=request.input)]
    items = _Items(origins)
    for i, item in enumerate(request.input):
        items.add(item, f"input[{i}]")
    return items.messages


def input_items(request: ResponsesRequest) -> list[dict[str, Any]]:
    """This request's input as items (what ``GET /v1/responses/{id}/input_items`` lists, ids added then)."""
    raw: list[Any] = request.input if isinstance(request.input, list) else [request.input]
    items: list[dict[str, Any]] = []
    for item in raw:
        if isinstance(item, str):
            item = {"role": "user", "content": [{"type": "input_text", "text": item}]}
        items.append({"type": "message", **item} if "type" not in item else dict(item))
    return items


def check_tool_results(messages: list[Message]) -> None:
    """Every tool result answers a call made earlier in the conversation (a 400 otherwise)."""
    called: set[str] = set()
    for message in messages:
        called.update(call.id for call in message.tool_calls or [])
        if message.role == "tool" and message.tool_call_id not in called:
            raise BadRequest(
                f"no function call found for the function_call_output with call_id {message.tool_call_id!r}",
                param="input",
            )
