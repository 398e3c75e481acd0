"""Calendar sync without I/O: the VEVENT we push for an appointment, the busy times we read
from an owner's calendar, the ICS feed.

- One appointment is one VEVENT whose UID is `notifications.calendar_uid` (the same in the
  caller's email invitation), with SEQUENCE from the appointment (+ 1 on every move or
  cancellation) and times in the organization's zone (TZID, with its VTIMEZONE).
- Busy times: every event between two instants, recurrences expanded by our own bounded
  iterator (recurrence.py: a weekly event keeps its local time across DST, one cap per read);
  all-day and floating events are read in the organization's zone; TRANSPARENT ("free") and
  cancelled events and our own pushes are not busy. Overlapping ranges are merged.
- Names and phones: the caller's phone is shown masked to its last four digits, never whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import icalendar

from booking_service.domain import recurrence
from booking_service.domain.caller_messages import calendar_uid
from booking_service.domain.recurrence import UnreadableCalendar

__all__ = ["UnreadableCalendar"]

PRODID = "-//booking_service//calendar sync//EN"


def own_uid_suffix(org_id: int) -> str:
    """What this organization's own UIDs end with (notifications.calendar_uid): its pushes are
    not busy time; another organization's invitation in the owner's calendar is."""
    return f"-{org_id}@booking-service"


def masked_phone(phone: str | None) -> str:
    """The last four digits only ("***0123"); empty without a phone."""
    if not phone:
        return ""
    digits = [c for c in phone if c.isdigit()]
    return "***" + "".join(digits[-4:])


@dataclass(frozen=True)
class CalendarEntry:
    """What an owner's calendar shows for one appointment."""

    org_id: int
    reference: str
    sequence: int
    starts_at: datetime
    ends_at: datetime
    name: str | None
    service: str | None
    resource: str
    phone: str | None
    status: str = "booked"
    unconfirmed: bool = False

    @property
    def uid(self) -> str:
        return calendar_uid(self.org_id, self.reference)


def summary(entry: CalendarEntry) -> str:
    """The event's title: who and what."""
    who = entry.name or "Caller"
    what = entry.service or "appointment"
    return f"{who}: {what}"


def description(entry: CalendarEntry) -> str:
    """The event's notes: reference, resource, the phone masked, unconfirmed or not."""
    lines = [f"Reference {entry.reference}", f"With {entry.resource}"]
    if entry.phone:
        lines.append(f"Phone {masked_phone(entry.phone)}")
    if entry.unconfirmed:
        lines.append("Unconfirmed: booked while this calendar could not be checked")
    return "\n".join(lines)


def vevent(entry: CalendarEntry, zone: ZoneInfo, stamp: datetime) -> icalendar.Event:
    """The VEVENT of one appointment, its times in `zone` (TZID)."""
    event = icalendar.Event()
    event.add("uid", entry.uid)
    event.add("dtstamp", stamp.astimezone(UTC))
    event.add("sequence", entry.sequence)
    event.add("dtstart", entry.starts_at.astimezone(zone))
    event.add("dtend", entry.ends_at.astimezone(zone))
    event.add("summary", summary(entry))
    event.add("description", description(entry))
    event.add("transp", "OPAQUE")
    event.add("status", "TENTATIVE" if entry.unconfirmed else "CONFIRMED")
    return event


def _calendar(events: Iterable[icalendar.Event], name: str | None = None) -> icalendar.Calendar:
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    if name:
        cal.add("x-wr-calname", name)
    for event in events:
        cal.add_component(event)
    # A TZID needs its VTIMEZONE for clients that do not know the zone by name.
    cal.add_missing_timezones()
    return cal


def event_document(entry: CalendarEntry, zone: ZoneInfo, stamp: datetime) -> bytes:
    """The iCalendar object PUT to a CalDAV calendar for one appointment."""
    return _calendar([vevent(entry, zone, stamp)]).to_ical()


def feed_document(
    entries: Iterable[CalendarEntry], zone: ZoneInfo, stamp: datetime, name: str
) -> bytes:
    """The ICS feed: one VEVENT per appointment, the same UIDs as the pushes."""
    return _calendar((vevent(e, zone, stamp) for e in entries), name).to_ical()


# --- reading an owner's calendar ---------------------------------------------------------------


def _blocks(component: icalendar.Component, own_suffix: str) -> bool:
    if str(component.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
        return False
    if str(component.get("STATUS", "")).upper() == "CANCELLED":
        return False
    return not str(component.get("UID", "")).endswith(own_suffix)


def merge(ranges: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Sorted, with overlapping and touching ranges joined."""
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def busy_ranges(
    calendars: Iterable[icalendar.Calendar],
    zone: ZoneInfo,
    start: datetime,
    end: datetime,
    *,
    own_suffix: str,
    limit: int = recurrence.MAX_OCCURRENCES,
) -> list[tuple[datetime, datetime]]:
    """Busy time between `start` and `end` (clipped to it), merged. Raises UnreadableCalendar
    for an event that cannot be read (its time could be busy: never guessed free) or past
    `limit` occurrences in all, free and cancelled ones counted (recurrence.py)."""
    budget = recurrence.new_budget(limit)
    found = []
    for cal in calendars:
        for occurrence in recurrence.occurrences(cal, zone, start, end, budget):
            if not _blocks(occurrence.component, own_suffix):
                continue
            begins, ends = max(occurrence.starts_at, start), min(occurrence.ends_at, end)
            if ends > begins:
                found.append((begins, ends))
    return merge(found)
