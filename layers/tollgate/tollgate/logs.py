"""Structured logging: one JSON line per event. Never pass prompts, keys or secrets in.

Locally each line is ``{"event": …, **fields}``. On Lambda (``AWS_LAMBDA_FUNCTION_NAME`` set by the runtime)
lines go through powertools' ``LambdaPowertoolsFormatter`` (service ``tollgate``): ``message`` is the event
name and the fields sit at the top level, so CloudWatch Logs Insights can filter on ``request_id`` and
``tenant`` directly.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import msgspec

_configured = False
_json_fields = False  # True on Lambda: fields travel as the record's extras

# LogRecord attributes (and the formatter's own keys) that an extra field may not overwrite.
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "level",
    "location",
    "timestamp",
    "service",
}


def running_on_lambda() -> bool:
    """Whether this process runs in a Lambda sandbox (the runtime's own variable, not a tollgate setting)."""
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def _formatter(lambda_json: bool) -> logging.Formatter:
    if not lambda_json:
        return logging.Formatter("%(message)s")
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter  # ~35 ms, Lambda only

    return LambdaPowertoolsFormatter(service="tollgate", utc=True, use_rfc3339=True)


def configure_logging(level: str, *, lambda_json: bool | None = None) -> None:
    """Set the root format once per process (idempotent: create_app may run more than once)."""
    global _configured, _json_fields
    if _configured:
        logging.getLogger("tollgate").setLevel(level.upper())
        return
    _json_fields = running_on_lambda() if lambda_json is None else lambda_json
    handler = logging.StreamHandler()
    handler.setFormatter(_formatter(_json_fields))
    root = logging.getLogger("tollgate")
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    # httpx logs every upstream request at INFO (with its URL): noise, and ~0.2 ms a request
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured = True


def reset_logging() -> None:
    """Undo ``configure_logging`` (tests switch between the local and the Lambda format)."""
    global _configured, _json_fields
    root = logging.getLogger("tollgate")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    _configured = _json_fields = False


def _extras(fields: dict[str, Any]) -> dict[str, Any]:
    return {(f"{name}_" if name in _RESERVED else name): value for name, value in fields.items()}


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    if not logger.isEnabledFor(level):
        return
    if _json_fields:
        logger.log(level, event, extra=_extras(fields), stacklevel=2)
        return
    line = msgspec.json.encode({"event": event, **fields}, enc_hook=str).decode()
    logger.log(level, line)
