"""What a caller's reply means (domain/sms_replies.py), pure."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from booking_service.domain import sms_replies
from booking_service.domain.sms_replies import CANCEL, CONFIRM, OTHER, YES, Reply, parse


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("1", Reply(CONFIRM)),
        (" 1. ", Reply(CONFIRM)),
        ("confirm", Reply(CONFIRM)),
        ("Confirmed!", Reply(CONFIRM)),
        ("yes", Reply(YES)),
        ("Y", Reply(YES)),
        ("2", Reply(CANCEL)),
        ("2 k7m2qx", Reply(CANCEL, "K7M2QX")),
        ("1 ref K7M2QX", Reply(CONFIRM, "K7M2QX")),
        ("12", Reply(OTHER)),
        ("3", Reply(OTHER)),
        ("cancel", Reply(OTHER)),  # an opt-out word, handled before replies are read
        ("what time is it?", Reply(OTHER)),
        ("", Reply(OTHER)),
        ("yes please come", Reply(OTHER)),
    ],
)
def test_a_reply_means_what_it_says(body, expected):
    assert parse(body) == expected


def test_the_times_are_short_and_in_the_business_zone():
    moment = datetime(2026, 12, 8, 15, 0, tzinfo=UTC)
    assert sms_replies.short_when(moment, ZoneInfo("America/New_York")) == "Tue Dec 8 at 10:00 AM"
    assert sms_replies.short_when(moment, ZoneInfo("Europe/London")) == "Tue Dec 8 at 3:00 PM"


def test_the_offer_reads_as_the_issue_asks():
    text = sms_replies.waitlist_offer("Bright Smile", "Tue Dec 8 at 10:00 AM", "Maria", 15)
    assert text.endswith(
        "A time opened: Tue Dec 8 at 10:00 AM with Maria. Reply YES within 15 minutes to take it."
    )
