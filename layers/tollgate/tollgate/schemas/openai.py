"""OpenAI chat-completions request model, validated with pydantic."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from pydantic_core import PydanticCustomError

from .. import containers, tool_fees
from ..names import NAME_PATTERN as NAME_PATTERN  # session ids, pools, tenants: one pattern (names.py)
from ..tool_fees import ToolUses
from .limits import MAX_CHOICES, MAX_OUTPUT_TOKENS, ModelName
from .native import AnthropicOptions

# Fields tollgate itself understands; never forwarded upstream (DESIGN.md §4).
EXTENSION_FIELDS = frozenset({"provider", "session_id", "pool", "loop_mode", "loop_until", "loop_max_turns"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)


# Anthropic-only fields on the internal request (``exclude=True``: never dumped, so adapters that
# serialise messages with ``model_dump`` drop them). Only the Anthropic and Bedrock adapters read them.
CacheControl = dict[str, Any]


class TextPart(_Strict):
    type: Literal["text"]
    text: str
    cache_control: CacheControl | None = Field(None, exclude=True)


class ImageURL(_Strict):
    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageURL
    cache_control: CacheControl | None = Field(None, exclude=True)


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class FunctionCall(_Strict):
    name: str
    arguments: str = ""


class ToolCall(_Strict):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ThinkingBlock(_Strict):
    """An Anthropic ``thinking`` (text + signature) or ``redacted_thinking`` (data) block, kept as the
    client sent it: Anthropic checks the signature, so it goes back upstream unchanged."""

    type: Literal["thinking", "redacted_thinking"]
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None

    def block(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    thinking_blocks: list[ThinkingBlock] | None = Field(None, exclude=True)  # an assistant turn's, in order
    cache_control: CacheControl | None = Field(None, exclude=True)  # a tool result's
    # a tool result's content blocks as a Messages client sent them, when they are not all text
    # (images, tool references): an Anthropic upstream gets them; the others get the text
    tool_content: list[dict[str, Any]] | None = Field(None, exclude=True)
    # a Messages tool_result's ``is_error``: Anthropic gets ``is_error``, Bedrock Claude ``status: error``;
    # the others read the "Error: " that starts the content
    tool_error: bool = Field(False, exclude=True)
    # a user or assistant turn's blocks as a Messages client sent them, when some have no OpenAI
    # counterpart (server tool calls and results, documents): an Anthropic upstream gets them verbatim
    anthropic_content: list[dict[str, Any]] | None = Field(None, exclude=True)

    def text(self) -> str:
        """The message's text parts joined (images left out)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))

    def image_count(self) -> int:
        if self.content is None or isinstance(self.content, str):
            return 0
        return sum(isinstance(part, ImagePart) for part in self.content)


class FunctionDefinition(_Strict):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = Field(None, strict=True)


class Tool(_Strict):
    type: Literal["function"] = "function"
    function: FunctionDefinition
    cache_control: CacheControl | None = Field(None, exclude=True)
    # set only by the Messages parser (``Tool.model_construct``): a client's own value is dropped on
    # validation, or a chat client could send an Anthropic server tool past its checks and fee holds
    anthropic_tool: dict[str, Any] | None = Field(None, exclude=True)  # the Messages client's tool as sent
    anthropic_server_tool: bool = Field(False, exclude=True)  # web search, ...: for Anthropic only

    @model_validator(mode="before")
    @classmethod
    def _no_client_anthropic_tool(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("anthropic_tool" in data or "anthropic_server_tool" in data):
            return {k: v for k, v in data.items() if k not in ("anthropic_tool", "anthropic_server_tool")}
        return data


class StreamOptions(_Strict):
    include_usage: bool = Field(False, strict=True)


class ChatCompletionRequest(BaseModel):
    """The body of POST /v1/chat/completions. Unknown top-level fields are kept in ``model_extra``."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    model: ModelName | None = None
    messages: list[Message] = Field(min_length=1)
    stream: bool = Field(False, strict=True)
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, strict=True, ge=1, le=MAX_OUTPUT_TOKENS)
    max_completion_tokens: int | None = Field(None, strict=True, ge=1, le=MAX_OUTPUT_TOKENS)
    temperature: float | None = Field(None, strict=True, ge=0, le=2)
    top_p: float | None = Field(None, strict=True, ge=0, le=1)
    stop: str | list[str] | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    n: int | None = Field(None, strict=True, ge=1, le=MAX_CHOICES)
    # tollgate extensions (DESIGN.md §4); stripped before anything goes upstream
    provider: str | None = None
    session_id: str | None = Field(None, min_length=1, max_length=128, pattern=NAME_PATTERN)
    pool: str | None = Field(None, min_length=1, max_length=64, pattern=NAME_PATTERN)
    loop_mode: Literal["basic", "agent"] | None = None
    loop_until: str | None = Field(None, min_length=1, max_length=200)
    loop_max_turns: int | None = Field(None, strict=True, ge=1)  # capped: TOLLGATE_LOOP_MAX_TURNS_CAP
    # set by the Messages wire (wire.anthropic_messages_request.to_chat) only; never read from a request body
    _anthropic: AnthropicOptions | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _prompt_or_messages(cls, data: Any) -> Any:
        """The seed router's ``prompt`` (one user message) as an alternative to ``messages``."""
        if not isinstance(data, dict) or "prompt" not in data:
            return data  # neither: pydantic's own "messages: Field required" (param ``messages``)
        if "messages" in data:
            raise PydanticCustomError(
                "exclusive", "`messages` and `prompt` are mutually exclusive: send one of them"
            )
        prompt = data["prompt"]
        if not isinstance(prompt, str) or not prompt:
            raise PydanticCustomError("prompt_type", "`prompt` must be a non-empty string")
        rest = {k: v for k, v in data.items() if k != "prompt"}
        return rest | {"messages": [{"role": "user", "content": prompt}]}

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def stop_list(self) -> list[str] | None:
        if self.stop is None:
            return None
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def anthropic(self) -> AnthropicOptions | None:
        """The Messages request's fields that have no OpenAI counterpart (None for other wires)."""
        return self._anthropic

    def with_anthropic(self, options: AnthropicOptions) -> ChatCompletionRequest:
        self._anthropic = options
        return self

    def named_containers(self) -> list[containers.Named]:
        """The code execution containers the request asks to work in: a Messages client's ``container``."""
        return containers.anthropic_named(self._anthropic.extra) if self._anthropic is not None else []

    def function_tools(self) -> list[Tool]:
        """The tools an upstream other than Anthropic can be given (Anthropic server tools left out)."""
        return [tool for tool in self.tools or [] if not tool.anthropic_server_tool]

    def tool_uses(self) -> dict[str, ToolUses]:
        """The billed tool uses the request may run, by the provider that runs them: Anthropic's server
        tools (only an Anthropic upstream gets them); a web search one counts its ``max_uses`` (the
        Messages parser gives every such tool one)."""
        native = [tool.anthropic_tool for tool in self.tools or [] if tool.anthropic_tool]
        kinds = [tool_fees.anthropic_server(tool.get("type")) for tool in native]
        searches = sum(
            int(tool.get("max_uses") or 0)
            for tool, kind in zip(native, kinds, strict=True)
            if kind == "web_search"
        )
        uses = ToolUses.of(searches, kinds)
        return {"claude": uses} if uses else {}

    def passthrough(self) -> dict[str, Any]:
        """Unknown top-level fields, for OpenAI-compatible upstreams (extensions never included)."""
        extra = self.model_extra or {}
        return {k: v for k, v in extra.items() if k not in EXTENSION_FIELDS}
