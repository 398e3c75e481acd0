"""Local wall-clock times in the organization's zone, as instants.

Everything is stored in UTC; conversions use zoneinfo (never fixed offsets), so answers stay
right across daylight-saving changes. Reading a start from text belongs to a front end
(vapi/arguments.py); the wording of a date and time is shared by what the assistant says
(vapi/speech.py) and what a caller is sent (notifications.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class ParsedStart:
    """A start as understood: the instant, and whether the wall time was ambiguous or absent.

    `nonexistent` wall times (the spring-forward gap) carry the instant just after the gap,
    so that alternatives can be offered around it.
    """

    start: datetime
    ambiguous: bool = False
    nonexistent: bool = False
    wall: datetime | None = None  # the local wall time as said, when it is nonexistent


def localize(naive: datetime, zone: ZoneInfo) -> ParsedStart:
    """Attach `zone` to a wall-clock time.

    An ambiguous wall time (the fall-back hour) resolves to the earlier occurrence (fold=0).
    """
    aware = naive.replace(tzinfo=zone, fold=0)
    normalized = aware.astimezone(UTC).astimezone(zone)
    if normalized.replace(tzinfo=None) != naive:
        return ParsedStart(normalized.astimezone(UTC), nonexistent=True, wall=naive)
    later = naive.replace(tzinfo=zone, fold=1)
    # Stored and computed in UTC: timedelta arithmetic on a zoneinfo datetime is wall-clock
    # arithmetic and would get durations across a DST change wrong.
    return ParsedStart(aware.astimezone(UTC), ambiguous=aware.utcoffset() != later.utcoffset())


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def minutes(n: int) -> timedelta:
    """A duration of n minutes."""
    return timedelta(minutes=n)


# The names the assistant says, in English as its sentences are, whatever the process's locale
# (strftime's %A and %B follow it, and cost ten times as much: a refusal says several dates).
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def spoken_date(moment: datetime) -> str:
    """'Tuesday, December 1, 2026' (weekday and year make a wrong date audible or visible)."""
    return f"{_WEEKDAYS[moment.weekday()]}, {_MONTHS[moment.month - 1]} {moment.day}, {moment.year}"


def spoken_time(moment: datetime) -> str:
    """'10:00 AM'."""
    hour = moment.hour % 12 or 12
    return f"{hour}:{moment:%M} {'AM' if moment.hour < 12 else 'PM'}"


def spoken_datetime(moment: datetime) -> str:
    """'Tuesday, December 1, 2026 at 10:00 AM' (give it a local time)."""
    return f"{spoken_date(moment)} at {spoken_time(moment)}"


def retry_jitter() -> float:
    """A factor in [0.9, 1.1] that spreads retries, so failures at one moment are not all
    retried at the next."""
    return random.uniform(0.9, 1.1)  # noqa: S311 - spreading retries, not a secret
