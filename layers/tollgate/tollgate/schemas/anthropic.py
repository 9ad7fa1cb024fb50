"""Anthropic Messages request model (POST /v1/messages), validated with pydantic.

Only what tollgate translates is modelled; unknown fields (``top_k``, ``cache_control``, ...) are
ignored. Block types that have no OpenAI counterpart (``thinking``, ``document``) are refused with 400.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .limits import MAX_MODEL_NAME, MAX_OUTPUT_TOKENS
from .openai import NAME_PATTERN


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextBlock(_Model):
    type: Literal["text"]
    text: str


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


class ToolUseBlock(_Model):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any] = Field(default_factory=dict)


class ToolResultBlock(_Model):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[TextBlock] | None = None
    is_error: bool | None = Field(None, strict=True)

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        return "".join(block.text for block in self.content)


ContentBlock = Annotated[TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock, Field(discriminator="type")]


class MessageParam(_Model):
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class ToolParam(_Model):
    name: str = Field(min_length=1)
    description: str | None = None
    input_schema: dict[str, Any]


class ToolChoice(_Model):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = Field(None, min_length=1)
    disable_parallel_tool_use: bool | None = Field(None, strict=True)


class Metadata(_Model):
    user_id: str | None = None


class MessagesRequest(_Model):
    """The body of POST /v1/messages; ``max_tokens`` is required, as in Anthropic's API."""

    model: str | None = Field(None, max_length=MAX_MODEL_NAME)
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
    # tollgate extensions, as on /v1/chat/completions (DESIGN.md §4)
    provider: str | None = None
    session_id: str | None = Field(None, min_length=1, max_length=128, pattern=NAME_PATTERN)
    pool: str | None = Field(None, min_length=1, max_length=64, pattern=NAME_PATTERN)
