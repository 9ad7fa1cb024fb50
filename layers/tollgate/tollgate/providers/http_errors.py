"""Upstream HTTP failures -> tollgate errors, by table (shared by the HTTP adapters)."""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime
from time import time
from typing import Any

import httpx
import msgspec

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

MAX_MESSAGE = 500


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta or HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None


def upstream_message(body: bytes | str) -> str:
    """The human message inside an upstream error body (OpenAI, Anthropic or plain text)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        payload = json.loads(text)
    except ValueError:
        return text.strip()[:MAX_MESSAGE] or "no message"
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or json.dumps(error)
    else:
        message = str(error)
    return str(message)[:MAX_MESSAGE]


def error_for_status(
    provider: str, status: int, body: bytes | str, retry_after: str | None = None
) -> TollgateError:
    """The tollgate error for a non-2xx upstream answer (its ``upstream_status`` set)."""
    error = _error_for_status(provider, status, upstream_message(body), retry_after)
    error.upstream_status = status
    return error


def _error_for_status(provider: str, status: int, message: str, retry_after: str | None) -> TollgateError:
    if status in (401, 403):
        return UpstreamAuthError(f"upstream rejected tollgate's credentials for {provider}: {message}")
    if status == 429:
        return UpstreamRateLimited(
            f"{provider} is rate limiting: {message}", retry_after=retry_after_seconds(retry_after)
        )
    if status == 404:
        return UpstreamNotFound(f"{provider}: {message}", param="model")
    if status in (400, 413, 422):
        return UpstreamBadRequest(f"{provider}: {message}")
    if status == 408:
        return UpstreamTimeout(f"{provider} timed out (408): {message}")
    if status in (503, 529):  # 529: Anthropic's "overloaded"
        return UpstreamUnavailable(
            f"{provider} is unavailable: {message}", retry_after=retry_after_seconds(retry_after)
        )
    if status == 504:
        return UpstreamTimeout(f"{provider} timed out: {message}")
    return UpstreamError(f"{provider} answered {status}: {message}")


# what to start when a local provider does not answer
_START = {"llama_cpp": "start llama-server or ", "ollama": "start ollama (ollama serve) or "}


def connect_hint(provider: str, base_url: str | None) -> str:
    """`` at URL: start ... or set X_BASE_URL, or pick another provider ...`` (the URL without credentials
    or query: never a key)."""
    if not base_url:
        return ""
    url = httpx.URL(base_url)
    shown = str(url.copy_with(userinfo=b"", query=None, fragment=None))
    return (
        f" at {shown}: {_START.get(provider, '')}set {provider.upper()}_BASE_URL, "
        "or pick another provider with TOLLGATE_DEFAULT_PROVIDER (or the request's provider field)"
    )


def error_for_exception(provider: str, exc: httpx.HTTPError, base_url: str | None = None) -> TollgateError:
    """The tollgate error for a transport failure (no answer at all, or a broken one)."""
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return UpstreamTimeout(f"{provider} did not answer in time")
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return UpstreamUnavailable(f"cannot connect to {provider}{connect_hint(provider, base_url)}")
    return UpstreamError(f"{provider} connection failed: {type(exc).__name__}")


async def raise_for_upstream(provider: str, response: httpx.Response) -> None:
    """Raise the mapped error when a (streamed) upstream response is not a success."""
    if response.status_code < 400:
        return
    body = await response.aread()
    raise error_for_status(provider, response.status_code, body, response.headers.get("retry-after"))


def decode_upstream_json(raw: bytes | str) -> dict[str, Any]:
    """An upstream body or SSE data line as a JSON object, or UpstreamError."""
    try:
        payload = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise UpstreamError("upstream sent a body that is not JSON") from exc
    except RecursionError as exc:  # msgspec's own depth limit
        raise UpstreamError("upstream sent JSON nested too deep") from exc
    if not isinstance(payload, dict):
        raise UpstreamError("upstream sent JSON that is not an object")
    return payload
