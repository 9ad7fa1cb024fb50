"""Anthropic Messages request model (POST /v1/messages), validated with pydantic.

Only what tollgate translates is modelled. Unknown top-level fields (``top_k``, new betas' fields) are
kept in ``model_extra`` for an Anthropic upstream (less those that would cost more than the reservation
bounds: ``providers.passthrough.MESSAGES``); unknown fields inside blocks are ignored. ``thinking``
blocks keep their ``signature``; ``cache_control`` is kept on text, image and tool_result blocks and on
tools. Block types tollgate does not translate (``document``, server tool blocks) are kept whole for an
Anthropic upstream (``OtherBlock``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator
from pydantic_core import PydanticCustomError

from .limits import MAX_OUTPUT_TOKENS, ModelName
from .openai import NAME_PATTERN


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)


class TextBlock(_Model):
    type: Literal["text"]
    text: str
    cache_control: dict[str, Any] | None = None


class Base64Source(_Model):
    type: Literal["base64"]
    media_type: str = Field(min_length=1)
    data: str = Field(min_length=1)


class URLSource(_Model):
    type: Literal["url"]
    url: str = Field(min_length=1)


ImageSource = Annotated[Base64Source | URLSource, Field(discriminator="type")]


class ImageBlock(_Model):
    type: Literal["image"]
    source: ImageSource
    cache_control: dict[str, Any] | None = None


class ToolUseBlock(_Model):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any] = Field(default_factory=dict)


class ToolResultBlock(_Model):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[dict[str, Any]] | None = None  # text, image, tool_reference, ... blocks
    is_error: bool | None = Field(None, strict=True)
    cache_control: dict[str, Any] | None = None

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        return "".join(str(b.get("text") or "") for b in self.content if b.get("type") == "text")

    def only_text(self) -> bool:
        return not isinstance(self.content, list) or all(b.get("type") == "text" for b in self.content)


class ThinkingBlock(_Model):
    type: Literal["thinking"]
    thinking: str
    signature: str


class RedactedThinkingBlock(_Model):
    type: Literal["redacted_thinking"]
    data: str


class OtherBlock(BaseModel):
    """A block type tollgate does not translate (server tool calls and results, documents, search
    results, ...): kept whole for an Anthropic upstream, left out for the others."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    type: str = Field(min_length=1)


_KNOWN_BLOCKS = frozenset({"text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking"})


def _block_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if isinstance(kind, str) and kind in _KNOWN_BLOCKS else "other"  # "other" checks its type


ContentBlock = Annotated[
    Annotated[TextBlock, Tag("text")]
    | Annotated[ImageBlock, Tag("image")]
    | Annotated[ToolUseBlock, Tag("tool_use")]
    | Annotated[ToolResultBlock, Tag("tool_result")]
    | Annotated[ThinkingBlock, Tag("thinking")]
    | Annotated[RedactedThinkingBlock, Tag("redacted_thinking")]
    | Annotated[OtherBlock, Tag("other")],
    Discriminator(_block_kind),
]


class MessageParam(_Model):
    role: Literal["user", "assistant", "system"]  # system: Claude Code's mid-conversation system turns
    content: str | list[ContentBlock]


class ToolParam(BaseModel):
    """A client tool, or (``type`` other than ``custom``) an Anthropic server tool such as
    ``web_search_20250305``, which only an Anthropic upstream gets. Unknown fields (``defer_loading``,
    ``max_uses``, ...) are kept for an Anthropic upstream."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    type: str | None = None
    name: str = Field(min_length=1)
    description: str | None = None
    input_schema: dict[str, Any] | None = None  # required for client tools
    cache_control: dict[str, Any] | None = None

    @property
    def server(self) -> bool:
        return self.type not in (None, "custom")

    @model_validator(mode="after")
    def _schema_for_client_tools(self) -> ToolParam:
        if self.input_schema is None and not self.server:
            raise PydanticCustomError("missing", "input_schema: Field required")
        return self


class ToolChoice(_Model):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = Field(None, min_length=1)
    disable_parallel_tool_use: bool | None = Field(None, strict=True)


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)

    user_id: str | None = None


class MessagesRequest(BaseModel):
    """The body of POST /v1/messages; ``max_tokens`` is required, as in Anthropic's API. Unknown
    top-level fields are kept in ``model_extra`` (passed to an Anthropic upstream, dropped elsewhere)."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    model: ModelName | None = None
    max_tokens: int = Field(strict=True, ge=1, le=MAX_OUTPUT_TOKENS)
    system: str | list[TextBlock] | None = None
    messages: list[MessageParam] = Field(min_length=1)
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoice | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(None, strict=True, ge=0, le=1)
    top_p: float | None = Field(None, strict=True, ge=0, le=1)
    stream: bool = Field(False, strict=True)
    metadata: Metadata | None = None
    thinking: dict[str, Any] | None = None  # {"type": "enabled", "budget_tokens": N} | adaptive | disabled
    output_config: dict[str, Any] | None = None  # {"effort": "low" | "medium" | "high" | "max", ...}
    context_management: dict[str, Any] | None = None
    # tollgate extensions, as on /v1/chat/completions (DESIGN.md §4)
    provider: str | None = None
    session_id: str | None = Field(None, min_length=1, max_length=128, pattern=NAME_PATTERN)
    pool: str | None = Field(None, min_length=1, max_length=64, pattern=NAME_PATTERN)


class CountTokensRequest(MessagesRequest):
    """The body of POST /v1/messages/count_tokens: a Messages request whose ``max_tokens`` may be left
    out (strict and bounded as on ``/v1/messages`` where it is given)."""

    max_tokens: int = Field(1, strict=True, ge=1, le=MAX_OUTPUT_TOKENS)
