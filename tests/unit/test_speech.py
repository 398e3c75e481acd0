"""What the assistant says when a start cannot be booked: one sentence per reason, in the
organization's zone, with the rules that explain it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from booking_service.domain import scheduling
from booking_service.domain.scheduling import Rules
from booking_service.use_cases.orgs import OrgInfo
from booking_service.voice.speech import reason_sentence

ORG = OrgInfo(
    1,
    "Clinic",
    "America/New_York",
    "US",
    30,
    rules=Rules(slot_minutes=15, min_notice_minutes=120, horizon_days=60, buffer_minutes=0),
)
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # 10:00 AM in New York
START = datetime(2026, 12, 1, 15, 5, tzinfo=UTC)  # 10:05 AM in New York
TODAY = "Today is Wednesday, November 25, 2026."


@pytest.mark.parametrize(
    ("reason", "sentence"),
    [
        (scheduling.PAST, f"Tuesday, December 1, 2026 at 10:05 AM is in the past. {TODAY}"),
        (
            scheduling.TOO_SOON,
            "Tuesday, December 1, 2026 at 10:05 AM is too soon: bookings need at least "
            "2 hours notice.",
        ),
        (
            scheduling.BEYOND_HORIZON,
            "Tuesday, December 1, 2026 at 10:05 AM is too far ahead: we take bookings up to "
            f"60 days in advance. {TODAY}",
        ),
        (scheduling.CLOSED_DAY, "We are closed on Tuesday, December 1, 2026."),
        (
            scheduling.OUTSIDE_HOURS,
            "10:05 AM on Tuesday, December 1, 2026 is outside our opening hours.",
        ),
        (
            scheduling.OFF_GRID,
            "Appointments start every 15 minutes, so 10:05 AM is not a start time we can offer.",
        ),
        (scheduling.TAKEN, "Tuesday, December 1, 2026 at 10:05 AM is already taken."),
    ],
)
def test_each_reason_is_said_in_the_organizations_zone(reason, sentence):
    assert reason_sentence(reason, ORG, START, NOW) == sentence


def test_an_unknown_reason_is_an_error_not_a_silent_sentence():
    with pytest.raises(KeyError):
        reason_sentence("nonsense", ORG, START, NOW)
