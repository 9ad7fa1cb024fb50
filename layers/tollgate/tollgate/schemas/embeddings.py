"""The ``POST /v1/embeddings`` request body."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .limits import MAX_EMBEDDING_DIMENSIONS, ModelName
from .openai import EXTENSION_FIELDS, NAME_PATTERN

MAX_INPUTS = 2048  # OpenAI's own limit per request


class EmbeddingsRequest(BaseModel):
    """Unknown top-level fields are kept in ``model_extra`` and passed to OpenAI-compatible upstreams."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    input: str | list[str] = Field(min_length=1)
    model: ModelName | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, strict=True, ge=1, le=MAX_EMBEDDING_DIMENSIONS)
    user: str | None = None
    # tollgate extensions (DESIGN.md §4); never forwarded upstream
    provider: str | None = None
    pool: str | None = Field(None, min_length=1, max_length=64, pattern=NAME_PATTERN)

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,) if isinstance(self.input, str) else tuple(self.input)

    def passthrough(self) -> dict[str, Any]:
        extra = self.model_extra or {}
        return {k: v for k, v in extra.items() if k not in EXTENSION_FIELDS}
