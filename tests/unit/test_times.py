"""Parsing starts in the organization's zone and speaking dates (zoneinfo, DST-aware)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from booking_service.domain.times import spoken_date, spoken_datetime
from booking_service.voice.arguments import ToolError, parse_start

NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def test_naive_start_is_local_time():
    parsed = parse_start("2026-12-01T10:00", NY, NOW)

    assert parsed.start.astimezone(NY).isoformat() == "2026-12-01T10:00:00-05:00"
    assert not parsed.ambiguous and not parsed.nonexistent


def test_start_with_offset_is_kept():
    parsed = parse_start("2026-12-01T15:00:00Z", NY, NOW)

    assert parsed.start.astimezone(NY).hour == 10


def test_spring_forward_gap_is_marked_nonexistent_with_the_wall_time():
    parsed = parse_start("2027-03-14T02:30", NY, NOW)

    assert parsed.nonexistent
    assert parsed.wall == datetime(2027, 3, 14, 2, 30)
    assert parsed.start.astimezone(NY).hour == 3


def test_fall_back_overlap_takes_the_earlier_occurrence():
    parsed = parse_start("2027-11-07T01:30", NY, NOW)

    assert parsed.ambiguous
    assert parsed.start.astimezone(NY).isoformat() == "2027-11-07T01:30:00-04:00"


@pytest.mark.parametrize("raw", ["0001-01-01T00:00+00:00", "9999-12-31T23:59+14:00"])
def test_years_at_the_edge_of_the_calendar_are_not_understood(raw):
    with pytest.raises(ToolError, match="Today is"):
        parse_start(raw, NY, NOW)


@pytest.mark.parametrize("raw", ["tomorrow at ten", "2026-12-01", "", "2026-02-30T10:00"])
def test_unusable_start_asks_again_with_today(raw):
    with pytest.raises(ToolError, match="Today is"):
        parse_start(raw, NY, NOW)


def test_spoken_datetime_has_weekday_date_and_time():
    assert spoken_datetime(datetime(2026, 12, 1, 14, 5)) == "Tuesday, December 1, 2026 at 2:05 PM"


def test_spoken_dates_name_weekdays_and_months_as_english_strftime_does():
    """The names come from tables (strftime costs ten times as much): every day of a leap
    year reads as strftime reads it in the C locale these tests run in."""
    first = datetime(2028, 1, 1, 9, 30, tzinfo=NY)
    for offset in range(366):
        day = first + timedelta(days=offset)
        assert spoken_date(day) == f"{day:%A}, {day:%B} {day.day}, {day.year}"
