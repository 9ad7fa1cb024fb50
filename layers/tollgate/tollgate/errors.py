"""tollgate's own errors. Adapters and services raise these; only ``api.errors`` knows HTTP statuses."""

from __future__ import annotations

from typing import Any


class TollgateError(Exception):
    """Base class: a message a client may read, the offending field, and a machine-readable code."""

    default_code: str | None = None
    upstream_status: int | None = None  # the upstream's HTTP status, when one answered

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.retry_after = retry_after


class BadRequest(TollgateError):
    default_code = "invalid_request"


class Unauthorized(TollgateError):
    default_code = "invalid_api_key"


class Forbidden(TollgateError):
    default_code = "model_not_allowed"


class NotFound(TollgateError):
    default_code = "not_found"


class PayloadTooLarge(TollgateError):
    default_code = "payload_too_large"


class RateLimited(TollgateError):
    default_code = "rate_limited"


class BudgetExceeded(RateLimited):
    """A budget refused the request; ``budget`` says which (kind, scope, name, period, needed, remaining,
    resets_at: ``budgets.exceeded``), also in the error body."""

    default_code = "budget_exceeded"

    def __init__(
        self, message: str, *, budget: dict[str, Any] | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.budget = budget


class UpstreamError(TollgateError):
    """The upstream answered with something tollgate cannot pass on as a success (-> 502)."""

    default_code = "upstream_error"


class UpstreamAuthError(UpstreamError):
    default_code = "upstream_auth_error"


class UpstreamBadRequest(BadRequest):
    """The upstream refused the request as invalid; its message is passed on."""

    default_code = "upstream_bad_request"


class UpstreamNotFound(NotFound):
    """The upstream does not know the model (or the route); its message is passed on."""

    default_code = "model_not_found"


class UpstreamRateLimited(RateLimited):
    default_code = "upstream_rate_limited"


class UpstreamUnavailable(TollgateError):
    default_code = "provider_unavailable"


class UpstreamTimeout(TollgateError):
    default_code = "upstream_timeout"
