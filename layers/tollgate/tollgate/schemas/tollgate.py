"""Bodies of tollgate's own endpoints (hoosh token pools, admin)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..alerts.thresholds import parse_alert_at
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
    pool: str | None = Field(None, min_length=1, max_length=64, pattern=NAME_PATTERN)  # None: the key's
    tokens: int = Field(strict=True, ge=0, le=MAX_POOL_TOKENS)


class TokensReport(_Body):
    """``reservation_id`` (what reserve returned), or the older form: ``reserved`` (its size)."""

    pool: str | None = Field(None, min_length=1, max_length=64, pattern=NAME_PATTERN)  # None: the key's
    reservation_id: str | None = Field(None, min_length=1, max_length=64, pattern=NAME_PATTERN)
    reserved: int | None = Field(None, strict=True, ge=0, le=MAX_POOL_TOKENS)
    actual: int = Field(strict=True, ge=0, le=MAX_POOL_TOKENS)

    @model_validator(mode="after")
    def _one_reservation(self) -> TokensReport:
        if (self.reservation_id is None) == (self.reserved is None):
            raise ValueError("give reservation_id (from /v1/tokens/reserve) or reserved, not both")
        return self


class KeyCreate(_Body):
    tenant: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN)
    name: str | None = Field(None, max_length=200)
    models: list[Annotated[str, Field(max_length=MAX_MODEL_NAME)]] | None = Field(
        None, max_length=MAX_KEY_MODELS
    )
    pool: str = Field("default", min_length=1, max_length=64, pattern=NAME_PATTERN)
    pools: list[Annotated[str, PoolName]] = Field(default_factory=list, max_length=32)
    expires_in: int | None = Field(None, strict=True, ge=1, le=MAX_EXPIRES_IN_SECONDS)


class BudgetSet(_Body):
    tokens: int | None = Field(strict=True, ge=0, le=MAX_BUDGET_TOKENS)
    # alert thresholds in percent (tollgate.alerts): whole numbers 1..100, deduplicated and sorted
    alert_at: tuple[int, ...] | None = None

    @field_validator("alert_at", mode="before")
    @classmethod
    def _thresholds(cls, value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, list):
            raise ValueError("alert_at must be a list of whole percents (1..100), e.g. [50, 80, 100]")
        return parse_alert_at(value)
