"""Bodies of tollgate's own endpoints (hoosh token pools, admin)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .openai import NAME_PATTERN

PoolName = Field(min_length=1, max_length=64, pattern=NAME_PATTERN)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokensRequest(_Body):
    pool: str = Field("default", min_length=1, max_length=64, pattern=NAME_PATTERN)
    tokens: int = Field(ge=0, le=10**12)


class TokensReport(_Body):
    pool: str = Field("default", min_length=1, max_length=64, pattern=NAME_PATTERN)
    reserved: int = Field(ge=0, le=10**12)
    actual: int = Field(ge=0, le=10**12)


class KeyCreate(_Body):
    tenant: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN)
    name: str | None = Field(None, max_length=200)
    models: list[str] | None = None
    pool: str = Field("default", min_length=1, max_length=64, pattern=NAME_PATTERN)
    expires_in: int | None = Field(None, ge=1)


class BudgetSet(_Body):
    tokens: int | None = Field(ge=0, le=10**15)
