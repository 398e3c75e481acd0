"""Local time for callers: parsing starts in the organization's zone, and speaking dates.

Everything is stored in UTC; conversions use zoneinfo (never fixed offsets), so answers stay
right across daylight-saving changes.
"""

from __future__ import annotations

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


def localize(naive: datetime, zone: ZoneInfo) -> tuple[datetime, bool]:
    """Attach `zone` to a wall-clock time; return (aware time, was_ambiguous).

    A wall time that does not exist (the spring-forward gap) raises ToolError; an ambiguous
    one (the fall-back hour) resolves to the earlier occurrence (fold=0).
    """
    aware = naive.replace(tzinfo=zone, fold=0)
    round_trip = aware.astimezone(UTC).astimezone(zone)
    if round_trip.replace(tzinfo=None) != naive:
        raise ToolError(
            f"{spoken_time(naive)} on {spoken_date(naive)} does not exist in {zone.key} "
            "because the clocks change then. Please choose another time."
        )
    later = naive.replace(tzinfo=zone, fold=1)
    return aware, aware.utcoffset() != later.utcoffset()


def parse_start(raw: str, zone: ZoneInfo, now: datetime) -> tuple[datetime, bool]:
    """Parse an ISO 8601 start; a naive value is local time in `zone`.

    Returns (aware start, was_ambiguous). Unparseable or past starts raise ToolError with
    today's local date so the assistant can correct itself.
    """
    text = (raw or "").strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ToolError(
            f"I could not understand the start time {text[:40]!r}. {today_sentence(zone, now)} "
            "Please give the date and time, for example 2026-12-01T10:00."
        ) from None
    if len(text) <= 10:
        # A bare date would silently become midnight; ask for the time instead.
        raise ToolError(
            f"Please include a time of day with the date {text!r}. {today_sentence(zone, now)}"
        )
    ambiguous = False
    if parsed.tzinfo is None:
        parsed, ambiguous = localize(parsed, zone)
    if parsed <= now:
        local = parsed.astimezone(zone)
        raise ToolError(
            f"{spoken_datetime(local)} is in the past. {today_sentence(zone, now)} "
            "Please choose a future date and time."
        )
    return parsed, ambiguous


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def minutes(n: int) -> timedelta:
    """A duration of n minutes."""
    return timedelta(minutes=n)
