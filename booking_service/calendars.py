"""Calendar sync without I/O: the VEVENT we push for an appointment, the busy times we read
from an owner's calendar, the ICS feed.

- One appointment is one VEVENT whose UID is `notifications.calendar_uid` (the same in the
  caller's email invitation), with SEQUENCE from the appointment (+ 1 on every move or
  cancellation) and times in the organization's zone (TZID, with its VTIMEZONE).
- Busy times: every event between two instants, recurrences expanded by
  `recurring-ical-events` (a weekly event keeps its local time across DST); all-day and floating
  events are read in the organization's zone; TRANSPARENT ("free") and cancelled events and our
  own pushes are not busy. Overlapping ranges are merged.
- Names and phones: the caller's phone is shown masked to its last four digits, never whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from booking_service.notifications import calendar_uid

PRODID = "-//booking_service//calendar sync//EN"
# A poll reads at most this many occurrences (after expanding recurrences): a calendar with a
# never-ending every-minute event must fail its poll, not fill memory and the busy table.
MAX_OCCURRENCES = 10_000


class UnreadableCalendar(ValueError):
    """The calendar's events cannot be turned into busy times; the message says which and why
    (never the event's text)."""


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


def _summary(entry: CalendarEntry) -> str:
    who = entry.name or "Caller"
    what = entry.service or "appointment"
    return f"{who}: {what}"


def _description(entry: CalendarEntry) -> str:
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
    event.add("summary", _summary(entry))
    event.add("description", _description(entry))
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


def _instant(value: date | datetime, zone: ZoneInfo) -> datetime:
    """An aware UTC instant: a date is local midnight in `zone`, floating time is `zone`'s."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time.min)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def _blocks(component: icalendar.Component, own_suffix: str) -> bool:
    if str(component.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
        return False
    if str(component.get("STATUS", "")).upper() == "CANCELLED":
        return False
    return not str(component.get("UID", "")).endswith(own_suffix)


def _span(component: icalendar.Component, zone: ZoneInfo) -> tuple[datetime, datetime] | None:
    if component.get("DTSTART") is None:
        return None
    start = component.decoded("DTSTART")
    if component.get("DTEND") is not None:
        end = component.decoded("DTEND")
    elif component.get("DURATION") is not None:
        end = start + component.decoded("DURATION")
    elif isinstance(start, datetime):
        return None  # RFC 5545: a timed event without end or duration takes no time
    else:
        end = start + timedelta(days=1)  # an all-day event without an end is one day
    begins, ends = _instant(start, zone), _instant(end, zone)
    return (begins, ends) if ends > begins else None


def merge(ranges: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Sorted, with overlapping and touching ranges joined."""
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


_PERIOD_S = {
    "SECONDLY": 1,
    "MINUTELY": 60,
    "HOURLY": 3600,
    "DAILY": 86400,
    "WEEKLY": 7 * 86400,
    "MONTHLY": 28 * 86400,
    "YEARLY": 365 * 86400,
}


def _estimated_occurrences(cal: icalendar.Calendar, window_s: float) -> int:
    """An upper estimate of how many occurrences the window holds, from each RRULE's frequency,
    interval and BY* lists, without expanding anything (expanding an every-second rule over a
    year would take hours)."""
    total = 0
    for component in cal.walk("VEVENT"):
        rule = component.get("RRULE")
        if rule is None:
            total += 1
            continue
        rules = rule if isinstance(rule, list) else [rule]
        for one in rules:
            freq = str((one.get("FREQ") or ["DAILY"])[0]).upper()
            interval = max(1, int((one.get("INTERVAL") or [1])[0]))
            per_period = 1
            for part in ("BYSECOND", "BYMINUTE", "BYHOUR", "BYDAY", "BYMONTHDAY", "BYMONTH"):
                per_period *= max(1, len(one.get(part) or []))
            count = one.get("COUNT")
            estimate = window_s / (_PERIOD_S.get(freq, 1) * interval) * per_period + 1
            total += int(min(estimate, int(count[0]) * per_period) if count else estimate)
    return total


def _uid(cal: icalendar.Calendar) -> str:
    uids = {str(c.get("UID", "")) for c in cal.walk("VEVENT")}
    return ", ".join(sorted(uids))[:120] or "(no UID)"


def busy_ranges(
    calendars: Iterable[icalendar.Calendar],
    zone: ZoneInfo,
    start: datetime,
    end: datetime,
    *,
    own_suffix: str,
    limit: int = MAX_OCCURRENCES,
) -> list[tuple[datetime, datetime]]:
    """Busy time between `start` and `end` (clipped to it), merged. Raises UnreadableCalendar
    for an event that cannot be read (its time could be busy: never guessed free) or past
    `limit` occurrences."""
    found = []
    for cal in calendars:
        # recurring-ical-events reads all-day and floating occurrences in the process's zone
        # unless told otherwise: ask in the organization's zone, and convert each occurrence.
        try:
            if _estimated_occurrences(cal, (end - start).total_seconds()) > limit:
                raise UnreadableCalendar(
                    f"more than {limit:,} occurrences in the window (an event repeats too "
                    f"often: {_uid(cal)})"
                )
            occurrences = recurring_ical_events.of(cal).between(
                start.astimezone(zone), end.astimezone(zone)
            )
            for component in occurrences:
                span = _span(component, zone)
                if span is None or not _blocks(component, own_suffix):
                    continue
                begins, ends = max(span[0], start), min(span[1], end)
                if ends > begins:
                    found.append((begins, ends))
                    if len(found) > limit:
                        raise UnreadableCalendar(
                            f"more than {limit:,} busy times in the window ({_uid(cal)})"
                        )
        except UnreadableCalendar:
            raise
        except Exception as exc:
            raise UnreadableCalendar(
                f"the event {_uid(cal)} could not be read ({type(exc).__name__})"
            ) from exc
    return merge(found)
