"""The one place that turns errors into responses: the OpenAI error object, by table."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from ..errors import (
    BadRequest,
    BudgetExceeded,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    TollgateError,
    Unauthorized,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ..logs import log_event
from ..wire.openai_chat import error_body
from .headers import response_headers

logger = logging.getLogger("tollgate.errors")

# (status, OpenAI error type), most specific class first
_TABLE: tuple[tuple[type[TollgateError], int, str], ...] = (
    (PayloadTooLarge, 413, "invalid_request_error"),
    (BadRequest, 400, "invalid_request_error"),
    (Unauthorized, 401, "authentication_error"),
    (Forbidden, 403, "permission_error"),
    (NotFound, 404, "not_found_error"),
    (RateLimited, 429, "rate_limit_error"),
    (UpstreamTimeout, 504, "timeout_error"),
    (UpstreamUnavailable, 503, "service_unavailable_error"),
    (UpstreamError, 502, "upstream_error"),
)
_HTTP_CODES = {
    400: "invalid_request",
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    429: "rate_limited",
}


def status_and_type(error: TollgateError) -> tuple[int, str]:
    for cls, status, error_type in _TABLE:
        if isinstance(error, cls):
            return status, error_type
    return 500, "server_error"


def error_payload(error: TollgateError) -> dict[str, Any]:
    _, error_type = status_and_type(error)
    payload = error_body(error_type, error)
    if isinstance(error, BudgetExceeded) and error.budget is not None:
        payload["error"]["budget"] = error.budget  # which budget, in fields (the message says the same)
    return payload


def failure_headers(request: Request[Any, Any, Any]) -> dict[str, str]:
    """``x-tollgate-request-id`` on every error (a fresh id where the request failed before it had one);
    ``x-tollgate-provider`` once the provider was chosen (the tracker's call, set by ``pipeline.begin``)."""
    state = request.scope.setdefault("state", {})
    request_id = state.get("request_id") or state.setdefault("request_id", uuid.uuid4().hex)
    headers = {"x-tollgate-request-id": request_id}
    tracker = state.get("tracker")
    exchange = getattr(tracker, "exchange", None)
    if exchange is not None and exchange.attempts:  # what was tried last, and how many attempts
        headers |= response_headers(request_id, exchange.served_by())
    elif (provider := getattr(getattr(tracker, "call", None), "provider", None)) is not None:
        headers["x-tollgate-provider"] = provider
    return headers


def _headers(request: Request[Any, Any, Any], error: TollgateError) -> dict[str, str]:
    headers = failure_headers(request)
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    elif isinstance(error, BudgetExceeded):
        # a budget with no period never resets: retrying cannot help (the openai and anthropic SDKs read it)
        headers["x-should-retry"] = "false"
    return headers


def tollgate_error_handler(request: Request[Any, Any, Any], error: TollgateError) -> Response[Any]:
    status, _ = status_and_type(error)
    headers = _headers(request, error)
    log_event(
        logger,
        logging.INFO,
        "request_error",
        request_id=headers["x-tollgate-request-id"],
        path=request.url.path,
        status=status,
        code=error.code,
        message=error.message,
    )
    return Response(error_payload(error), status_code=status, headers=headers)


def _invalid_parameter(exc: HTTPException) -> tuple[str, str] | None:
    """A query or path parameter Litestar refused (type or range): a message naming it, and its name."""
    extra = exc.extra if isinstance(exc, ValidationException) else None
    first = extra[0] if isinstance(extra, list) and extra else None
    if not isinstance(first, dict) or not first.get("key"):
        return None
    name, source = str(first["key"]), first.get("source", "query")
    source = getattr(source, "value", source)  # Litestar's ParamType enum
    return f"{source} parameter {name}: {first.get('message', 'invalid')}", name


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Litestar's own 404/405/413/400 in the same shape."""
    status = exc.status_code
    message = exc.detail if status != 404 else f"no route for {request.method} {request.url.path}"
    message, param = _invalid_parameter(exc) or (message, None)
    error = TollgateError(str(message), code=_HTTP_CODES.get(status, "error"))
    error_type = {413: "invalid_request_error", 404: "not_found_error"}.get(status, "invalid_request_error")
    body = {"error": {"message": error.message, "type": error_type, "param": param, "code": error.code}}
    return Response(body, status_code=status, headers=_headers(request, error))


def unexpected_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A bug: log it with its traceback, answer in the OpenAI shape without details."""
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    body = {
        "error": {
            "message": "internal error",
            "type": "server_error",
            "param": None,
            "code": "internal_error",
        }
    }
    return Response(body, status_code=500, headers=failure_headers(request))


EXCEPTION_HANDLERS: dict[Any, Any] = {
    TollgateError: tollgate_error_handler,
    HTTPException: http_exception_handler,
    Exception: unexpected_error_handler,
}
