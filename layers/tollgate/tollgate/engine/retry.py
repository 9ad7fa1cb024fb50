"""What is worth another attempt, how long to wait before it, and the error a request gets when every
attempt failed.

Retryable (only before the first byte reached the client): connect errors and timeouts, upstream
408/409/429/5xx and Anthropic's 529, Bedrock throttling / service unavailable / model not ready — in
tollgate's errors: ``UpstreamRateLimited``, ``UpstreamUnavailable``, ``UpstreamTimeout`` and plain
``UpstreamError``. Never: the upstream's 400/401/403/404/413/422 (``UpstreamBadRequest``,
``UpstreamAuthError``, ``UpstreamNotFound``): a bad request stays bad.
"""

from __future__ import annotations

import copy
import random

from ..errors import (
    TollgateError,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .routes import RouterSpec

_NEVER = (UpstreamAuthError, UpstreamBadRequest, UpstreamNotFound)
_RETRYABLE = (UpstreamRateLimited, UpstreamUnavailable, UpstreamTimeout, UpstreamError)


def retryable(error: TollgateError) -> bool:
    return isinstance(error, _RETRYABLE) and not isinstance(error, _NEVER)


def delay_before(attempt: int, error: TollgateError, policy: RouterSpec, rng: random.Random) -> float:
    """Seconds to wait before attempt ``attempt + 1``: the upstream's Retry-After when it is at most
    ``retry_after_max_seconds`` (longer: move on at once), else exponential backoff with full jitter."""
    if error.retry_after is not None:
        return error.retry_after if error.retry_after <= policy.retry_after_max_seconds else 0.0
    ceiling = policy.backoff_seconds * (2 ** (attempt - 1))
    return rng.uniform(0, min(ceiling, policy.retry_after_max_seconds))


def exhausted(last: TollgateError, tried: list[str]) -> TollgateError:
    """The last error's class (so its status) with a message that lists every attempt."""
    if len(tried) <= 1:
        return last
    error = copy.copy(last)
    error.message = f"{len(tried)} attempts failed ({', '.join(tried)}): {last.message}"
    error.args = (error.message,)
    return error


def describe(deployment: str, error: TollgateError) -> str:
    """``openai:gpt-4.1 503``-style: the deployment and what went wrong, never a secret."""
    return f"{deployment} {error.upstream_status or error.code or type(error).__name__}"
