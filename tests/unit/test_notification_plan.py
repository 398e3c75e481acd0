"""When messages are due: offsets across DST, quiet hours (pure rules of caller_messages.py)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from booking_service.domain import caller_messages
from booking_service.domain.events import AppointmentBooked, AppointmentCancelled

NY = ZoneInfo("America/New_York")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=NY)


def test_a_day_before_means_the_same_local_time_across_the_fall_back():
    # New York falls back at 02:00 on Sunday 2026-11-01: "24 h before" Sunday 10:00 is
    # Saturday 10:00, 25 real hours earlier.
    start = local("2026-11-01T10:00")
    due = caller_messages.reminder_due(start, 1440, NY)

    assert due.astimezone(NY).isoformat() == "2026-10-31T10:00:00-04:00"
    assert start - due == timedelta(hours=25)


def test_a_day_before_means_the_same_local_time_across_the_spring_forward():
    start = local("2027-03-14T10:00")  # the clocks went forward at 02:00 that morning
    due = caller_messages.reminder_due(start, 1440, NY)

    assert due.astimezone(NY).isoformat() == "2027-03-13T10:00:00-05:00"
    assert start - due == timedelta(hours=23)
    # Two days before is still the same local time.
    two = caller_messages.reminder_due(start, 2880, NY)
    assert two.astimezone(NY).isoformat() == "2027-03-12T10:00:00-05:00"


def test_hours_are_elapsed_time_across_a_change():
    start = local("2026-11-01T03:00")  # 01:00-02:00 happens twice this night
    due = caller_messages.reminder_due(start, 120, NY)

    assert start - due == timedelta(hours=2)
    assert due.astimezone(NY).isoformat() == "2026-11-01T01:00:00-05:00"


def _event(kind=AppointmentBooked, start="2026-12-01T09:00"):
    starts = local(start)
    return kind(
        org_id=1,
        timezone="America/New_York",
        appointment_id=1,
        contact_id=1,
        reference="K7M2QX",
        starts_at=starts,
        ends_at=starts + timedelta(minutes=30),
        resource="Main",
        service=None,
        name="Maria",
        email=None,
    )


def _audience(quiet=None, reminders=(1440, 120)):
    return caller_messages.Audience(
        business="Bright Smile Dental",
        zone=NY,
        reminder_minutes=reminders,
        quiet=quiet,
        phone="+14155550123",
        email=None,
    )


def test_a_confirmation_booked_in_quiet_hours_waits_for_their_end():
    now = local("2026-11-28T22:30").astimezone(UTC)
    planned = caller_messages.plan(_event(), _audience(quiet=(time(21), time(8))), now)
    confirmation = next(p for p in planned if p.kind == "confirmation")

    assert confirmation.due_at.astimezone(NY).isoformat() == "2026-11-29T08:00:00-05:00"


def test_a_reminder_whose_quiet_evening_has_passed_is_not_planned():
    # Booked at 22:30 for 09:00 tomorrow: the 2 h reminder (07:00) falls in quiet hours, and
    # their start (21:00 today) has passed.
    now = local("2026-11-30T22:30").astimezone(UTC)
    planned = caller_messages.plan(_event(), _audience(quiet=(time(21), time(8))), now)

    assert [p.kind for p in planned] == ["confirmation"]


def test_a_cancellation_plans_no_reminders():
    now = local("2026-11-28T12:00").astimezone(UTC)
    planned = caller_messages.plan(_event(AppointmentCancelled), _audience(), now)

    assert [p.kind for p in planned] == ["cancelled"]
    assert planned[0].body.startswith("Bright Smile Dental: your appointment on Tuesday, ")
