"""Bodies of tollgate's own endpoints (hoosh token pools, admin)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..budget_periods import BadPeriod, check_timezone
from .limits import (
    MAX_ALERT_PERCENT,
    MAX_ALERTS,
    MAX_BUDGET_TOKENS,
    MAX_BUDGET_USD,
    MAX_EXPIRES_IN_SECONDS,
    MAX_KEY_MODELS,
    MAX_POOL_TOKENS,
    KeyName,
    ModelName,
)
from .openai import NAME_PATTERN

PoolName = Field(min_length=1, max_length=64, pattern=NAME_PATTERN)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


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


Period = Literal["daily", "weekly", "monthly", "none"]
Usd = Annotated[float, Field(strict=True, ge=0, le=MAX_BUDGET_USD)]
AlertAt = Annotated[
    list[Annotated[int, Field(strict=True, ge=1, le=MAX_ALERT_PERCENT)]], Field(max_length=MAX_ALERTS)
]
Timezone = Annotated[str, Field(min_length=1, max_length=64)]


def _timezone(value: Any) -> Any:
    if isinstance(value, str):
        try:
            check_timezone(value)
        except BadPeriod as exc:
            raise ValueError(exc.message) from None
    return value


class KeyCreate(_Body):
    tenant: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN)
    name: KeyName | None = None
    models: list[ModelName] | None = Field(None, max_length=MAX_KEY_MODELS)
    pool: str = Field("default", min_length=1, max_length=64, pattern=NAME_PATTERN)
    pools: list[Annotated[str, PoolName]] = Field(default_factory=list, max_length=32)
    expires_in: int | None = Field(None, strict=True, ge=1, le=MAX_EXPIRES_IN_SECONDS)
    budget_usd: Usd | None = None  # the key's own USD budget per budget_period
    budget_period: Period | None = None
    budget_timezone: Timezone | None = None
    budget_alert_at: AlertAt | None = None

    _check_timezone = field_validator("budget_timezone")(_timezone)

    @model_validator(mode="after")
    def _usd_for_a_period(self) -> KeyCreate:
        if self.budget_usd is None and (self.budget_period or self.budget_timezone):
            raise ValueError("budget_period and budget_timezone need budget_usd")
        return self


class BudgetSet(_Body):
    """A pool's token capacity (null: unlimited) and its USD budget (``usd`` per ``period`` in
    ``timezone``; null: none); fields left out stay as they are."""

    tokens: int | None = Field(None, strict=True, ge=0, le=MAX_BUDGET_TOKENS)
    usd: Usd | None = None
    period: Period | None = None
    timezone: Timezone | None = None
    alert_at: AlertAt | None = None

    _check_timezone = field_validator("timezone")(_timezone)

    @model_validator(mode="after")
    def _something(self) -> BudgetSet:
        if not self.model_fields_set:
            raise ValueError("give at least one of tokens, usd, period, timezone, alert_at")
        return self


class KeyBudgetSet(_Body):
    """A key's USD budget (``usd`` per ``period`` in ``timezone``; null: none); fields left out stay."""

    usd: Usd | None = None
    period: Period | None = None
    timezone: Timezone | None = None
    alert_at: AlertAt | None = None

    _check_timezone = field_validator("timezone")(_timezone)

    @model_validator(mode="after")
    def _something(self) -> KeyBudgetSet:
        if not self.model_fields_set:
            raise ValueError("give at least one of usd, period, timezone, alert_at")
        return self
