"""Budget periods attacked with timezone edges: +14 h (Pacific/Kiritimati), 30- and 45-minute offsets
(Asia/Kolkata, Pacific/Chatham), a 30-minute DST shift (Australia/Lord_Howe), DST changes at local midnight
(America/Santiago, America/Asuncion, Asia/Beirut) and a zone that skipped a whole day (Pacific/Apia, 2011).
Walking every quarter hour of a year, each moment lies in its window, consecutive windows tile time with no
gap or overlap, a key never comes back once left, and ``resets_at`` is the next window's start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tollgate.budget_periods import window

ZONES = [
    "Pacific/Kiritimati",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "Australia/Lord_Howe",
    "America/Santiago",
    "America/Asuncion",
    "Asia/Beirut",
    "Europe/Berlin",
]


def _walk(period: str, zone: str, start: datetime, days: int) -> None:
    moment, end = start, start + timedelta(days=days)
    previous = None
    seen: set[str] = set()
    while moment < end:
        current = window(period, zone, moment)
        assert current.starts is not None and current.ends is not None
        assert current.starts <= moment < current.ends, (zone, moment, current)
        if previous is not None and current.key != previous.key:
            assert current.starts == previous.ends, (zone, moment, previous, current)  # no gap, no overlap
            assert current.key not in seen, (zone, moment, current.key)  # a period never comes back
            seen.add(previous.key)
        previous = current
        moment += timedelta(minutes=15)


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("period", ["daily", "weekly", "monthly"])
def test_windows_tile_a_year_in_edge_zones(period: str, zone: str) -> None:
    _walk(period, zone, datetime(2026, 1, 1, tzinfo=UTC), 366)


def test_a_skipped_local_day_is_no_window() -> None:
    # Samoa went from 29 Dec 2011 straight to 31 Dec 2011: the 30th has no moment and no window
    _walk("daily", "Pacific/Apia", datetime(2011, 12, 25, tzinfo=UTC), 14)
    before = window("daily", "Pacific/Apia", datetime(2011, 12, 30, 9, 59, tzinfo=UTC))
    after = window("daily", "Pacific/Apia", datetime(2011, 12, 30, 10, 0, tzinfo=UTC))
    assert (before.key, after.key) == ("2011-12-29", "2011-12-31") and before.ends == after.starts


def test_kiritimati_resets_fourteen_hours_before_utc() -> None:
    now = datetime(2026, 11, 30, 9, 59, tzinfo=UTC)  # 23:59 on the 30th in Kiritimati (+14)
    monthly = window("monthly", "Pacific/Kiritimati", now)
    assert monthly.key == "2026-11" and monthly.resets_at == "2026-11-30T10:00:00.000000Z"
    assert window("monthly", "Pacific/Kiritimati", now + timedelta(minutes=1)).key == "2026-12"
