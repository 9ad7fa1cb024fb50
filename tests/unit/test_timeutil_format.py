"""``format_time`` spells every moment exactly as ``strftime(FORMAT)`` in UTC (the stored, hashed format)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from tollgate.timeutil import FORMAT, format_time, normalize_time, parse_time


def _reference(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(FORMAT)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 22, 7, 23, 47, 123456, tzinfo=UTC),
        datetime(2026, 11, 22, 7, 23, 47, tzinfo=UTC),  # no microseconds: still six digits
        datetime(2026, 3, 29, 1, 30, tzinfo=ZoneInfo("Europe/Berlin")),
        datetime(2026, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2026, 1, 1, 0, 0, tzinfo=ZoneInfo("UTC")),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_format_time_matches_strftime(moment: datetime) -> None:
    assert format_time(moment) == _reference(moment)


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(999, 1, 1, tzinfo=UTC), "0999-01-01T00:00:00.000000Z"),
        (datetime(500, 6, 7, 8, 9, 10, 11, tzinfo=UTC), "0500-06-07T08:09:10.000011Z"),
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000000Z"),
    ],
)
def test_a_year_below_1000_keeps_its_leading_zeros_and_parses_back(moment: datetime, text: str) -> None:
    """strftime drops them (``1-01-01T...``): not ISO-8601, and it would sort after every later year."""
    assert format_time(moment) == text
    assert parse_time(text) == moment and normalize_time(text[:10]) == text[:10] + "T00:00:00.000000Z"


@pytest.mark.parametrize(
    "text", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+00:01"]
)
def test_a_time_outside_the_utc_calendar_is_a_value_error(text: str) -> None:
    """In UTC these fall before year 1 or after year 9999: a ValueError (what callers turn into a 400 or a
    usage error), not the OverflowError of ``astimezone``."""
    with pytest.raises(ValueError, match="out of range"):
        parse_time(text)
    with pytest.raises(ValueError, match="out of range"):
        normalize_time(text)


def test_format_time_matches_strftime_over_random_moments_and_zones() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        zone = timezone(timedelta(minutes=rng.randint(-900, 900)))
        moment = datetime.fromtimestamp(rng.uniform(0, 2e10), tz=zone)
        moment = moment.replace(microsecond=rng.randint(0, 999999))
        text = format_time(moment)
        assert text == _reference(moment)
        assert parse_time(text) == moment
