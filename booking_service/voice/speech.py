"""How the assistant says dates, times, refusal reasons and alternatives.

Weekday and year are always spoken, so a wrong date is audible; every time is local to the
organization (zoneinfo, never a fixed offset).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from booking_service.domain import scheduling
from booking_service.domain.scheduling import Slot
from booking_service.domain.times import spoken_date, spoken_datetime, spoken_time
from booking_service.use_cases.orgs import OrgInfo


def today_sentence(zone: ZoneInfo, now: datetime) -> str:
    """'Today is Wednesday, November 25, 2026.' in the organization's zone."""
    return f"Today is {spoken_date(now.astimezone(zone))}."


def nonexistent_sentence(naive: datetime, zone: ZoneInfo) -> str:
    """Explains a wall time that the clock change skips."""
    return (
        f"{spoken_time(naive)} on {spoken_date(naive)} does not exist in {zone.key} "
        "because the clocks change then."
    )


def describe_slots(slots: list[Slot], zone: ZoneInfo) -> str:
    """'Tuesday, December 1, 2026 at 10:30 AM (2026-12-01T10:30:00-05:00), ...'."""
    parts = []
    for slot in slots:
        local = slot.start.astimezone(zone)
        parts.append(f"{spoken_datetime(local)} ({local.isoformat()})")
    if len(parts) > 1:
        return ", ".join(parts[:-1]) + " or " + parts[-1]
    return parts[0] if parts else ""


def offer_sentence(slots: list[Slot], zone: ZoneInfo) -> str:
    """The spoken offer of alternatives (or that there are none)."""
    if not slots:
        return "I could not find another free time soon; please ask the business directly."
    if len(slots) == 1:
        return f"The nearest free time is {describe_slots(slots, zone)}."
    return f"The nearest free times are {describe_slots(slots, zone)}."


def reason_sentence(reason: str, org: OrgInfo, start: datetime, now: datetime) -> str:
    """Why `start` cannot be booked (one of scheduling's reasons), in words."""
    zone = org.zone
    local = start.astimezone(zone)
    rules = org.rules
    # Only the sentence asked for is built: each names a date or two, and a refusal is on
    # the path whose speed #30 measures.
    if reason == scheduling.PAST:
        return f"{spoken_datetime(local)} is in the past. {today_sentence(zone, now)}"
    if reason == scheduling.TOO_SOON:
        return (
            f"{spoken_datetime(local)} is too soon: bookings need at least "
            f"{minutes_words(rules.min_notice_minutes)} notice."
        )
    if reason == scheduling.BEYOND_HORIZON:
        return (
            f"{spoken_datetime(local)} is too far ahead: we take bookings up to "
            f"{rules.horizon_days} days in advance. {today_sentence(zone, now)}"
        )
    if reason == scheduling.CLOSED_DAY:
        return f"We are closed on {spoken_date(local)}."
    if reason == scheduling.OUTSIDE_HOURS:
        return f"{spoken_time(local)} on {spoken_date(local)} is outside our opening hours."
    if reason == scheduling.OFF_GRID:
        return (
            f"Appointments start every {rules.slot_minutes} minutes, so "
            f"{spoken_time(local)} is not a start time we can offer."
        )
    if reason == scheduling.TAKEN:
        return f"{spoken_datetime(local)} is already taken."
    raise KeyError(reason)


def minutes_words(minutes: int) -> str:
    """'2 hours', '90 minutes'."""
    if minutes % 60 == 0 and minutes >= 60:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minutes"
