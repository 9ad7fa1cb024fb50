"""Argument types and the parser class of the ``tollgate`` command: names, counts and times are checked
where they are parsed, and a bad argument is one line on stderr and exit 2 (never a traceback)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import timedelta
from typing import NoReturn

from .names import name_problem, printable
from .schemas.limits import MAX_KEY_MODELS, MAX_KEY_NAME, MAX_MODEL_NAME, control_characters
from .timeutil import format_time, parse_time, utc_now

SINCE_FORMS = "an ISO date/time (2026-11-01, 2026-11-01T12:00:00Z), today, yesterday, 7d, 24h or 30m"
_RELATIVE = re.compile(r"^(\d{1,6})([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line naming the command and pointing at its --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {printable(message)} (see {self.prog} --help)\n")


def name_type(kind: str) -> Callable[[str], str]:
    """An argparse type for a tenant, pool or key id (``names.py``)."""

    def parse(value: str) -> str:
        problem = name_problem(value, kind)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = kind  # argparse names the type in its messages
    return parse


def names_type(kind: str) -> Callable[[str], tuple[str, ...]]:
    """An argparse type for a comma-separated list of names (e.g. ``--pools a,b``), each checked."""
    one = name_type(kind)

    def parse(value: str) -> tuple[str, ...]:
        return tuple(one(name.strip()) for name in value.split(",") if name.strip())

    parse.__name__ = f"{kind} list"
    return parse


def label_type(value: str) -> str:
    """``--name``: a key's label, as the admin API takes it (at most 200 characters, no control ones)."""
    if len(value) > MAX_KEY_NAME or control_characters(value):
        problem = (
            f"at most {MAX_KEY_NAME} characters and no control characters, got '{printable(value[:80])}'"
        )
        raise argparse.ArgumentTypeError(problem)
    return value


label_type.__name__ = "name"


def models_type(value: str) -> str:
    """``--models``: a comma-separated allow-list, each entry as the admin API takes it (at most
    MAX_KEY_MODELS entries of at most MAX_MODEL_NAME characters, no control characters)."""
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if len(entries) > MAX_KEY_MODELS:
        raise argparse.ArgumentTypeError(f"at most {MAX_KEY_MODELS} models, got {len(entries)}")
    for entry in entries:
        if len(entry) > MAX_MODEL_NAME or control_characters(entry):
            problem = f"each model at most {MAX_MODEL_NAME} characters, no control characters"
            raise argparse.ArgumentTypeError(f"{problem}, got '{printable(entry[:80])}'")
    return value


models_type.__name__ = "models"


def count_type(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type for an integer in ``minimum..maximum`` (token counts, seconds)."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got '{printable(value)}'") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {number}")
        if maximum is not None and number > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {number}")
        return number

    parse.__name__ = "integer"
    return parse


def since_time(value: str) -> str:
    """``--since``: an ISO date/time, ``today`` / ``yesterday`` (UTC midnight) or ``7d`` / ``24h`` /
    ``30m`` ago, as the stored timestamp format."""
    text = value.strip().lower()
    now = utc_now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if text in ("today", "yesterday"):
        return format_time(midnight - timedelta(days=1 if text == "yesterday" else 0))
    relative = _RELATIVE.fullmatch(text)
    try:
        if relative:
            return format_time(now - timedelta(**{_UNITS[relative[2]]: int(relative[1])}))
        return format_time(parse_time(value.strip()))
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"expected {SINCE_FORMS}; got '{printable(value)}'") from None


since_time.__name__ = "time"
