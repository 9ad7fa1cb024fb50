"""Bodies of tollgate's own endpoints (hoosh token pools, admin)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from .limits import (
    MAX_BUDGET_TOKENS,
    MAX_EXPIRES_IN_SECONDS,
    MAX_KEY_MODELS,
    MAX_MODEL_NAME,
    MAX_POOL_TOKENS,
)
from .openai import NAME_PATTERN

PoolName = Field(min_length=1, max_length=64, pattern=NAME_PATTERN)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokensRequest(_Body):
    pool: str = Field("default", min_length=1, max_length=64, pattern=NAME_PATTERN)
    tokens: int = Field(strict=True, ge=0, le=MAX_POOL_TOKENS)


class TokensReport(_Body):
    pool: str = Field("default", min_length=1, max_length=64, pattern=NAME_PATTERN)
    reserved: int = Field(strict=True, ge=0, le=MAX_POOL_TOKENS)
    actual: int = Field(strict=True, ge=0, le=MAX_POOL_TOKENS)


class KeyCreate(_Body):
    tenant: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN)
    name: str | None = Field(None, max_length=200)
    models: list[Annotated[str, Field(max_length=MAX_MODEL_NAME)]] | None = Field(
        None, max_length=MAX_KEY_MODELS
    )
    pool: str = Field("default", min_length=1, max_length=64, pattern=NAME_PATTERN)
    expires_in: int | None = Field(None, strict=True, ge=1, le=MAX_EXPIRES_IN_SECONDS)


class BudgetSet(_Body):
    tokens: int | None = Field(strict=True, ge=0, le=MAX_BUDGET_TOKENS)
