"""``format_time`` spells every moment exactly as ``strftime(FORMAT)`` in UTC (the stored, hashed format)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from tollgate.timeutil import FORMAT, format_time, parse_time


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
        datetime(999, 1, 1, tzinfo=UTC),  # a year below 1000: strftime's spelling
        datetime(1, 1, 1, tzinfo=UTC),
    ],
)
def test_format_time_matches_strftime(moment: datetime) -> None:
    assert format_time(moment) == _reference(moment)


def test_format_time_matches_strftime_over_random_moments_and_zones() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        zone = timezone(timedelta(minutes=rng.randint(-900, 900)))
        moment = datetime.fromtimestamp(rng.uniform(0, 2e10), tz=zone)
        moment = moment.replace(microsecond=rng.randint(0, 999999))
        text = format_time(moment)
        assert text == _reference(moment)
        assert parse_time(text) == moment
