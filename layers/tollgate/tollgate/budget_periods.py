"""Calendar periods of USD budgets: which period a moment falls in, its counter key and when it ends.

A period is calendar-aligned in the budget's timezone (an IANA name, default UTC): ``daily`` starts at
local midnight, ``weekly`` on Monday at local midnight, ``monthly`` on the 1st; ``none`` never resets.
The period's key is part of the counter's key (``2026-11-26``, ``2026-W48``, ``2026-11``, ``all``), so a
new period starts from zero with no reset job. Boundaries are computed from local wall-clock dates and
converted to UTC with ``zoneinfo``, so a day across a DST change is 23 or 25 hours long, as it should be.
Time itself always comes from the caller (an injected ``timeutil.Clock``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import BadRequest
from .timeutil import format_time

PERIODS = ("daily", "weekly", "monthly", "none")
DEFAULT_TIMEZONE = "UTC"
NO_PERIOD_KEY = "all"


class BadPeriod(BadRequest):
    """An unknown period or timezone (400 / CLI exit 2; nothing is written)."""

    default_code = "invalid_budget"


def check_period(period: str) -> str:
    if period not in PERIODS:
        raise BadPeriod(f"period must be one of {', '.join(PERIODS)}; got {period!r}", param="period")
    return period


@cache
def _zone(name: str) -> tzinfo:
    if name == "UTC":
        return UTC
    return ZoneInfo(name)


# files of a system's zoneinfo folder that are not a place's zone: ``localtime`` is the host's own zone (so
# the CLI on a laptop and the gateway on Lambda would count a budget in different periods), ``posix/`` and
# ``right/`` are copies that only some systems have (``right/`` counts leap seconds), ``Factory`` has none
_HOST_ZONES = frozenset({"localtime", "posixrules", "Factory"})
_HOST_ZONE_FOLDERS = ("posix/", "right/")


def check_timezone(name: str) -> str:
    """An IANA timezone name zoneinfo knows (``Europe/Berlin``, ``UTC``), the same on every host: what an
    operator may set (a rule stored before the host zones were refused still counts in its zone)."""
    if name in _HOST_ZONES or name.startswith(_HOST_ZONE_FOLDERS):
        problem = (
            f"timezone {name!r} is not the same on every host: use an IANA name such as UTC or Europe/Berlin"
        )
        raise BadPeriod(problem, param="timezone")
    return _loadable(name)


def _unknown_zone(name: str) -> str:
    return f"unknown timezone {name!r}: use an IANA name such as UTC or Europe/Berlin"


def _loadable(name: str) -> str:
    problem = _unknown_zone(name)
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise BadPeriod(problem, param="timezone")
    try:
        _zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise BadPeriod(problem, param="timezone") from None
    return name


@dataclass(frozen=True, slots=True)
class Window:
    """One period: its counter key, and its start and end in UTC (``ends`` None: never resets)."""

    key: str
    starts: datetime | None
    ends: datetime | None

    @property
    def resets_at(self) -> str | None:
        return None if self.ends is None else format_time(self.ends)


def _local_midnight(day: date, zone: tzinfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def window(period: str, timezone: str, now: datetime) -> Window:
    """The period of ``period`` in ``timezone`` that ``now`` (aware) falls in."""
    check_period(period)
    if period == "none":
        return Window(NO_PERIOD_KEY, None, None)
    zone = _zone(_loadable(timezone))
    today = now.astimezone(zone).date()
    if period == "daily":
        start, end = today, today + timedelta(days=1)
        key = start.isoformat()
    elif period == "weekly":
        start = today - timedelta(days=today.weekday())  # Monday
        end = start + timedelta(days=7)
        year, week, _ = start.isocalendar()
        key = f"{year}-W{week:02d}"
    else:
        start = today.replace(day=1)
        end = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
        key = f"{start.year}-{start.month:02d}"
    return Window(key, _local_midnight(start, zone), _local_midnight(end, zone))
