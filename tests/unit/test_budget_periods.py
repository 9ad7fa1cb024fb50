"""Calendar periods of USD budgets (``budget_periods.window``): daily, weekly (Monday) and monthly
boundaries in UTC and in Europe/Berlin across both 2026 DST changes; the key changes exactly at the
boundary and ``resets_at`` is the next boundary in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tollgate.budget_periods import BadPeriod, check_timezone, window

BERLIN = "Europe/Berlin"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


TICK = timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("period", "zone", "moment", "key", "starts", "ends"),
    [
        ("daily", "UTC", "2026-11-26T13:00:00", "2026-11-26", "2026-11-26T00:00:00", "2026-11-27T00:00:00"),
        ("weekly", "UTC", "2026-11-26T13:00:00", "2026-W48", "2026-11-23T00:00:00", "2026-11-30T00:00:00"),
        ("monthly", "UTC", "2026-12-31T23:59:59", "2026-12", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
        ("monthly", "UTC", "2028-02-29T12:00:00", "2028-02", "2028-02-01T00:00:00", "2028-03-01T00:00:00"),
        # spring forward in Berlin (Sunday 2026-03-29, 02:00 CET -> 03:00 CEST): a 23-hour day
        ("daily", BERLIN, "2026-03-29T12:00:00", "2026-03-29", "2026-03-28T23:00:00", "2026-03-29T22:00:00"),
        ("weekly", BERLIN, "2026-03-29T12:00:00", "2026-W13", "2026-03-22T23:00:00", "2026-03-29T22:00:00"),
        ("monthly", BERLIN, "2026-03-15T00:00:00", "2026-03", "2026-02-28T23:00:00", "2026-03-31T22:00:00"),
        # fall back (Sunday 2026-10-25, 03:00 CEST -> 02:00 CET): a 25-hour day
        ("daily", BERLIN, "2026-10-25T12:00:00", "2026-10-25", "2026-10-24T22:00:00", "2026-10-25T23:00:00"),
        ("weekly", BERLIN, "2026-10-25T12:00:00", "2026-W43", "2026-10-18T22:00:00", "2026-10-25T23:00:00"),
        ("monthly", BERLIN, "2026-10-31T22:59:59", "2026-10", "2026-09-30T22:00:00", "2026-10-31T23:00:00"),
        # late evening UTC is already tomorrow in Berlin
        ("daily", BERLIN, "2026-11-26T23:30:00", "2026-11-27", "2026-11-26T23:00:00", "2026-11-27T23:00:00"),
    ],
)
def test_windows(period: str, zone: str, moment: str, key: str, starts: str, ends: str) -> None:
    found = window(period, zone, utc(moment))
    assert (found.key, found.starts, found.ends) == (key, utc(starts), utc(ends))
    assert found.resets_at == ends + ".000000Z"
    before, at_end = window(period, zone, utc(ends) - TICK), window(period, zone, utc(ends))
    assert before.key == key and at_end.key != key  # the period changes exactly at the boundary
    assert at_end.starts == utc(ends)
    assert window(period, zone, utc(starts)).key == key
    assert window(period, zone, utc(starts) - TICK).key != key


def test_the_dst_days_are_23_and_25_hours_long() -> None:
    spring = window("daily", BERLIN, utc("2026-03-29T12:00:00"))
    autumn = window("daily", BERLIN, utc("2026-10-25T12:00:00"))
    assert spring.ends and spring.starts and spring.ends - spring.starts == timedelta(hours=23)
    assert autumn.ends and autumn.starts and autumn.ends - autumn.starts == timedelta(hours=25)


def test_no_period_never_resets() -> None:
    found = window("none", BERLIN, utc("2026-03-29T12:00:00"))
    assert (found.key, found.starts, found.ends, found.resets_at) == ("all", None, None, None)


@pytest.mark.parametrize("period", ["yearly", "", "Daily", "30d"])
def test_an_unknown_period_is_refused(period: str) -> None:
    with pytest.raises(BadPeriod) as refused:
        window(period, "UTC", utc("2026-01-01T00:00:00"))
    assert refused.value.param == "period" and "daily, weekly, monthly, none" in refused.value.message


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd", "/etc/localtime", "Europe/"])
def test_an_unknown_timezone_is_refused(zone: str) -> None:
    with pytest.raises(BadPeriod) as refused:
        check_timezone(zone)
    assert refused.value.param == "timezone" and "IANA" in refused.value.message


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "Factory", "right/UTC", "posix/Europe/Berlin"])
def test_a_zone_that_depends_on_the_host_is_refused(zone: str) -> None:
    """``localtime`` is whatever zone the host runs in (a laptop's CLI and Lambda would count one budget in
    different periods); ``posix/`` and ``right/`` exist on some hosts only (``right/`` adds leap seconds)."""
    with pytest.raises(BadPeriod) as refused:
        check_timezone(zone)
    assert refused.value.param == "timezone" and "IANA" in refused.value.message


def test_known_timezones() -> None:
    assert check_timezone("UTC") == "UTC"
    assert check_timezone("America/New_York") == "America/New_York"
