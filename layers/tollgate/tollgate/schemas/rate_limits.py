"""The admin API's bodies for rate limits and key rotation."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..key_rotation import MAX_GRACE_SECONDS
from ..limits_admin import MAX_RATE


class LimitSet(BaseModel):
    """Requests and/or tokens per minute (whole numbers >= 1); what is left out is not limited."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    rpm: int | None = Field(None, strict=True, ge=1, le=MAX_RATE)
    tpm: int | None = Field(None, strict=True, ge=1, le=MAX_RATE)

    @model_validator(mode="after")
    def _something(self) -> LimitSet:
        if self.rpm is None and self.tpm is None:
            raise ValueError("give rpm, tpm or both (to remove a limit, DELETE it)")
        return self


class KeyRotate(BaseModel):
    """How long the old secret keeps working (seconds; 0: it stops now)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    grace_seconds: int = Field(0, strict=True, ge=0, le=MAX_GRACE_SECONDS)
