"""Local wall-clock times in the organization's zone, as instants.

Everything is stored in UTC; conversions use zoneinfo (never fixed offsets), so answers stay
right across daylight-saving changes. Reading a start from text and speaking a time belong to
a front end (vapi/arguments.py, vapi/speech.py).
"""

from __future__ import annotations

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
