"""The one timestamp format tollgate stores and hashes: UTC, microseconds, ``Z``.

``2026-11-22T07:23:47.123456Z`` sorts lexically in time order on every store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

Clock = Callable[[], datetime]  # injected where time decides (the sweep); ``utc_now`` in production


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """``FORMAT`` (3-4 calls a request: ``isoformat`` spells it in ~1.1 µs, ``strftime`` in ~1.7 µs), the
    year always in four digits (``strftime`` drops the leading zeros of a year below 1000)."""
    return _utc(moment).isoformat(timespec="microseconds")[:26] + "Z"


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a ValueError where that falls outside years 1-9999 (``0001-01-01T00:00+01:00``)."""
    if moment.tzinfo is UTC:
        return moment
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"{moment.isoformat()} is out of range: outside years 1-9999 in UTC") from exc


def now_str() -> str:
    return format_time(utc_now())


def parse_time(text: str) -> datetime:
    """Our own format, or any ISO-8601 time / date a client passes (``2026-11-01``); naive means UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not an ISO-8601 time: {text!r}") from exc
    return _utc(moment) if moment.tzinfo else moment.replace(tzinfo=UTC)


def normalize_time(text: str) -> str:
    return format_time(parse_time(text))


def after(seconds: float) -> str:
    return format_time(utc_now() + timedelta(seconds=seconds))


def epoch_seconds(text: str) -> int:
    """For DynamoDB's TTL attribute (epoch seconds)."""
    return int(parse_time(text).timestamp())
