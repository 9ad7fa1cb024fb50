"""Structured logging: one JSON line per event. Never pass prompts, keys or secrets in."""

from __future__ import annotations

import json
import logging
from typing import Any

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
    _configured = True


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, json.dumps({"event": event, **fields}, default=str, separators=(",", ":")))
