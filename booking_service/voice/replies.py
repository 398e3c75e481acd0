"""What the assistant says: single-line result strings and error sentences.

The assistant's model reads the whole result, not only `message`, so a result carries only
what its caller may hear: names only to the caller who booked under them or holds the
booking, and never notes (free text one caller typed must not be read to another).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from zoneinfo import ZoneInfo

from booking_service.domain.normalize import clean_name
from booking_service.domain.scheduling import Slot
from booking_service.domain.times import spoken_date, spoken_datetime, spoken_time
from booking_service.use_cases.appointments import AppointmentView, Cancellation, Rescheduling
from booking_service.use_cases.availability import Availability
from booking_service.use_cases.booking import Booking
from booking_service.use_cases.orgs import OrgInfo
from booking_service.use_cases.tool_calls import Answer
from booking_service.use_cases.waitlist import OFFER_MINUTES, Joined

# Not "nothing was booked": a commit may have succeeded before the connection dropped.
# Asking again is safe: the same caller at the same time gets the existing booking back.
UNAVAILABLE = (
    "I'm sorry, the booking system is not reachable right now. Please try again in a minute."
)
UNEXPECTED = (
    "I'm sorry, something went wrong on our side and nothing was booked. "
    "Please try again in a moment."
)
# Answers given without running the tool: past the request's limit of calls, while the
# organization is over its share of this worker, and past the request's budget.
TOO_MANY = "Too many requests at once; please ask again one at a time."
BUSY = "I'm handling several requests for this business right now; please ask again in a moment."
OUT_OF_TIME = "I ran out of time before I could do this one; please ask again."


def one_line(text: str) -> str:
    """VAPI's parser breaks on line breaks: collapse all whitespace to single spaces."""
    return " ".join(text.split())


def result(payload: dict) -> Answer:
    """A success answer: compact single-line JSON (json.dumps escapes any line breaks)."""
    return Answer(result=json.dumps(payload, ensure_ascii=False, separators=(",", ":")))


def error(sentence: str) -> Answer:
    """A failure answer the assistant speaks."""
    return Answer(error=one_line(sentence))


def _times(start: datetime, end: datetime, zone: ZoneInfo) -> dict:
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    return {
        "start": local_start.isoformat(),
        "end": local_end.isoformat(),
        "spoken": f"{spoken_datetime(local_start)} until {spoken_time(local_end)}",
    }


def _appointment(view: AppointmentView, zone: ZoneInfo) -> dict:
    return {
        "reference": view.reference,
        **_times(view.starts_at, view.ends_at, zone),
        "timezone": zone.key,
        "name": clean_name(view.name),
        "service": view.service,
        "resource": view.resource,
        "status": view.status,
    }


def booked(org: OrgInfo, booking: Booking, *, ambiguous: bool = False) -> Answer:
    """The answer for a booking (new, or the one the caller already holds at that time)."""
    zone = org.zone
    start = booking.starts_at.astimezone(zone)
    end = booking.ends_at.astimezone(zone)
    name = clean_name(booking.name)
    who = f" for {name}" if name else ""
    what = f" ({booking.service})" if booking.service else ""
    if booking.already_booked:
        message = (
            f"You already have this appointment{who}{what} on {spoken_datetime(start)} until "
            f"{spoken_time(end)}; nothing new was booked. Your reference is {booking.reference}."
        )
    else:
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
                "name": name,
                "service": booking.service,
                "resource": booking.resource,
                "spoken": f"{spoken_datetime(start)} until {spoken_time(end)}",
            },
            "alreadyBooked": booking.already_booked,
        }
    )


def _slot(slot: Slot, zone: ZoneInfo) -> dict:
    local = slot.start.astimezone(zone)
    return {
        "start": local.isoformat(),
        "resource": slot.resource_name,
        "spoken": spoken_datetime(local),
    }


def _spoken_slots(slots: list[Slot], zone: ZoneInfo) -> str:
    by_day: dict = {}
    for slot in slots:
        local = slot.start.astimezone(zone)
        by_day.setdefault(local.date(), []).append(spoken_time(local))
    parts = [f"on {spoken_date(day)} at {', '.join(times)}" for day, times in by_day.items()]
    return "; ".join(parts)


def _day(day: date) -> str:
    return spoken_date(datetime.combine(day, datetime.min.time()))


def availability(org: OrgInfo, found: Availability) -> Answer:
    """Free starts, or that there are none and the next day with room."""
    zone = org.zone
    length = f"{found.minutes}-minute {found.service or 'appointment'}"
    if found.slots:
        message = f"Free times for a {length}: {_spoken_slots(found.slots, zone)}."
        status = "available"
    else:
        window = (
            _day(found.first)
            if found.first == found.last
            else f"{_day(found.first)} to {_day(found.last)}"
        )
        status = "unavailable"
        message = f"There are no free times for a {length} on {window}."
        if found.next_day is not None:
            message += (
                f" The next day with room is {_day(found.next_day)}: "
                f"{_spoken_slots(list(found.next_day_slots), zone)}."
            )
        else:
            message += " I could not find a free time within our booking window."
    return result(
        {
            "status": status,
            "message": message,
            "durationMinutes": found.minutes,
            "service": found.service,
            "slots": [_slot(s, zone) for s in found.slots],
            "nextAvailableDay": found.next_day.isoformat() if found.next_day else None,
            "nextAvailableSlots": [_slot(s, zone) for s in found.next_day_slots],
            "timezone": zone.key,
        }
    )


def appointments(org: OrgInfo, views: list[AppointmentView]) -> Answer:
    """The caller's upcoming appointments, or the one named by reference (any status)."""
    zone = org.zone
    if not views:
        message = "I could not find any upcoming appointments for you."
    else:
        listed = "; ".join(
            f"{spoken_datetime(v.starts_at.astimezone(zone))}"
            f"{' for ' + v.service if v.service else ''}, reference {v.reference}"
            f"{' (cancelled)' if v.status == 'cancelled' else ''}"
            for v in views
        )
        count = len(views)
        noun = "appointment" if count == 1 else "appointments"
        upcoming = "upcoming " if all(v.status == "booked" for v in views) else ""
        message = f"You have {count} {upcoming}{noun}: {listed}."
    return result(
        {
            "status": "found" if views else "not_found",
            "message": message,
            "appointments": [_appointment(v, zone) for v in views],
        }
    )


def cancelled(org: OrgInfo, outcome: Cancellation) -> Answer:
    """The answer to a cancel request."""
    zone = org.zone
    view = outcome.appointment
    when = spoken_datetime(view.starts_at.astimezone(zone))
    if outcome.already_cancelled:
        message = f"The appointment on {when} (reference {view.reference}) was already cancelled."
        status = "already_cancelled"
    else:
        message = f"Your appointment on {when} (reference {view.reference}) is cancelled."
        status = "cancelled"
    return result({"status": status, "message": message, "appointment": _appointment(view, zone)})


def rescheduled(org: OrgInfo, outcome: Rescheduling, *, ambiguous: bool = False) -> Answer:
    """The answer to a successful move."""
    zone = org.zone
    view = outcome.appointment
    start = view.starts_at.astimezone(zone)
    message = (
        f"Your appointment is moved from {spoken_datetime(outcome.before.astimezone(zone))} to "
        f"{spoken_datetime(start)} until {spoken_time(view.ends_at.astimezone(zone))}. "
        f"The reference stays {view.reference}."
    )
    if outcome.previous_resource and view.resource != outcome.previous_resource:
        # Their usual person or room was taken then; the caller should hear who it is now.
        message += f" It is now with {view.resource} instead of {outcome.previous_resource}."
    if ambiguous:
        message += (
            f" That time happens twice because the clocks change; this is the first one "
            f"({start.tzname()})."
        )
    return result(
        {
            "status": "rescheduled",
            "message": message,
            "appointment": _appointment(view, zone),
            "previousStart": outcome.before.astimezone(zone).isoformat(),
        }
    )


def waitlisted(org: OrgInfo, joined: Joined) -> Answer:
    """On the waitlist: for which window, and what happens next."""
    zone = org.zone
    start, end = joined.window_start.astimezone(zone), joined.window_end.astimezone(zone)
    part = "" if joined.part_of_day == "any" else f" in the {joined.part_of_day}"
    message = (
        f"You're on the waitlist for a time{part} between {spoken_datetime(start)} and "
        f"{spoken_datetime(end)}. If one opens, we'll text this number; reply YES within "
        f"{OFFER_MINUTES} minutes to take it."
    )
    return result(
        {
            "status": "waiting",
            "waitlistId": joined.entry_id,
            "windowStart": start.isoformat(),
            "windowEnd": end.isoformat(),
            "partOfDay": joined.part_of_day,
            "message": message,
        }
    )


def structured(answer: Answer) -> dict:
    """An answer for a platform that takes any JSON (Retell, ElevenLabs): `result` is the
    sentence to speak, beside the same structured fields VAPI's `result` string carries
    (status, appointment, slots, ...); an error is `{"result": sentence, "status": "error"}`."""
    if answer.error is not None:
        return {"result": answer.error, "status": "error"}
    try:
        payload = json.loads(answer.result or "")
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        return {"result": answer.result or ""}
    fields = {key: value for key, value in payload.items() if key != "message"}
    return {"result": one_line(str(payload.get("message", ""))), **fields}
