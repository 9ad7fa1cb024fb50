"""Structured logging: one JSON line per event. Never pass prompts, keys or secrets in."""

from __future__ import annotations

import logging
from typing import Any

import msgspec

_configured = False


def configure_logging(level: str) -> None:
    """Set the root format once per process (idempotent: create_app may run more than once)."""
    global _configured
    if _configured:
        logging.getLogger("tollgate").setLevel(level.upper())
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("tollgate")
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    # httpx logs every upstream request at INFO (with its URL): noise, and ~0.2 ms a request
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured = True


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        line = msgspec.json.encode({"event": event, **fields}, enc_hook=str).decode()
        logger.log(level, line)
