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
    """``FORMAT`` (3-4 calls a request: ``isoformat`` spells it in ~1.1 µs, ``strftime`` in ~1.7 µs)."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    if moment.year < 1000:  # strftime writes such a year without its leading zeros
        return moment.strftime(FORMAT)
    return moment.isoformat(timespec="microseconds")[:26] + "Z"


def now_str() -> str:
    return format_time(utc_now())


def parse_time(text: str) -> datetime:
    """Our own format, or any ISO-8601 time / date a client passes (``2026-11-01``); naive means UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not an ISO-8601 time: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def normalize_time(text: str) -> str:
    return format_time(parse_time(text))


def after(seconds: float) -> str:
    return format_time(utc_now() + timedelta(seconds=seconds))


def epoch_seconds(text: str) -> int:
    """For DynamoDB's TTL attribute (epoch seconds)."""
    return int(parse_time(text).timestamp())
