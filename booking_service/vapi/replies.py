"""What the assistant says: single-line result strings and error sentences."""

from __future__ import annotations

import json

from booking_service.services.booking import Booking
from booking_service.services.orgs import OrgInfo
from booking_service.services.times import spoken_datetime, spoken_time
from booking_service.services.tool_calls import Answer

UNAVAILABLE = (
    "I'm sorry, the booking system is not reachable right now, so nothing was booked. "
    "Please try again in a minute."
)
UNEXPECTED = (
    "I'm sorry, something went wrong on our side and nothing was booked. "
    "Please try again in a moment."
)


def one_line(text: str) -> str:
    """VAPI's parser breaks on line breaks: collapse all whitespace to single spaces."""
    return " ".join(text.split())


def result(payload: dict) -> Answer:
    """A success answer: compact single-line JSON (json.dumps escapes any line breaks)."""
    return Answer(result=json.dumps(payload, ensure_ascii=False, separators=(",", ":")))


def error(sentence: str) -> Answer:
    """A failure answer the assistant speaks."""
    return Answer(error=one_line(sentence))


def booked(org: OrgInfo, booking: Booking, *, ambiguous: bool = False) -> Answer:
    """The answer for a new booking, with weekday, date and local time."""
    zone = org.zone
    start = booking.starts_at.astimezone(zone)
    end = booking.ends_at.astimezone(zone)
    who = f" for {booking.contact_name}" if booking.contact_name else ""
    what = f" ({booking.service})" if booking.service else ""
    message = (
        f"You're booked{who}{what} on {spoken_datetime(start)} until {spoken_time(end)}. "
        f"Your reference is {booking.reference}."
    )
    if ambiguous:
        message += (
            f" That time happens twice because the clocks change; this is the first one "
            f"({start.tzname()})."
        )
    return result(
        {
            "status": "booked",
            "message": message,
            "appointment": {
                "reference": booking.reference,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "timezone": zone.key,
                "service": booking.service,
            },
        }
    )
