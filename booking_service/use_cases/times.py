"""Local time for callers: parsing starts in the organization's zone, and speaking dates.

Everything is stored in UTC; conversions use zoneinfo (never fixed offsets), so answers stay
right across daylight-saving changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from booking_service.errors import ToolError


def spoken_date(moment: datetime) -> str:
    """'Tuesday, December 1, 2026' (weekday and year make a wrong date audible)."""
    return f"{moment:%A}, {moment:%B} {moment.day}, {moment.year}"


def spoken_time(moment: datetime) -> str:
    """'10:00 AM'."""
    hour = moment.hour % 12 or 12
    return f"{hour}:{moment:%M} {'AM' if moment.hour < 12 else 'PM'}"


def spoken_datetime(moment: datetime) -> str:
    """'Tuesday, December 1, 2026 at 10:00 AM'."""
    return f"{spoken_date(moment)} at {spoken_time(moment)}"


def today_sentence(zone: ZoneInfo, now: datetime) -> str:
    """'Today is Wednesday, November 25, 2026.' in the organization's zone."""
    return f"Today is {spoken_date(now.astimezone(zone))}."


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


def parse_start(raw: str, zone: ZoneInfo, now: datetime) -> ParsedStart:
    """Parse an ISO 8601 start; a naive value is local time in `zone`.

    Unparseable text raises ToolError with today's local date so the assistant can correct
    itself. Whether the time can be booked (past, hours, ...) is decided by the scheduler.
    """
    text = (raw or "").strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ToolError(
            f"I could not understand the time {text[:40]!r}. {today_sentence(zone, now)} "
            "Please give the date and time, for example 2026-12-01T10:00."
        ) from None
    if not 1900 <= parsed.year <= 2200:
        raise ToolError(
            f"I could not understand the time {text[:40]!r}. {today_sentence(zone, now)} "
            "Please give the date and time, for example 2026-12-01T10:00."
        )
    if len(text) <= 10:
        # A bare date would silently become midnight; ask for the time instead.
        raise ToolError(
            f"Please include a time of day with the date {text!r}. {today_sentence(zone, now)}"
        )
    if parsed.tzinfo is None:
        return localize(parsed, zone)
    return ParsedStart(parsed.astimezone(UTC))


def nonexistent_sentence(naive: datetime, zone: ZoneInfo) -> str:
    """Explains a wall time that the clock change skips."""
    return (
        f"{spoken_time(naive)} on {spoken_date(naive)} does not exist in {zone.key} "
        "because the clocks change then."
    )


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def minutes(n: int) -> timedelta:
    """A duration of n minutes."""
    return timedelta(minutes=n)
