"""What the assistant's arguments mean: start times, days, phone numbers and emails.

The assistant's model sends text; these functions turn it into values the use cases take,
or raise ToolError with a sentence that tells the model what to fix (today's date included,
since models invent past dates and wrong years).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from booking_service.domain.normalize import looks_like_template, normalize_email, normalize_phone
from booking_service.domain.times import ParsedStart, localize
from booking_service.use_cases.contacts import CallerIdentity
from booking_service.voice.speech import today_sentence


class ToolError(Exception):
    """Something in the arguments the caller must fix; `message` is speakable."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


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


def local_day_or_time(
    raw: str, zone: ZoneInfo, now: datetime, what: str
) -> tuple[date, datetime | None]:
    """A date ('2026-12-01') or a date-time; date-times also bound the window precisely."""
    text = raw.strip()
    unreadable = ToolError(
        f"I could not understand {what} {text[:40]!r}. {today_sentence(zone, now)} "
        "Please give a date like 2026-12-01, between the years 1900 and 2200."
    )
    try:
        if len(text) <= 10:
            day = date.fromisoformat(text)
            if not 1900 <= day.year <= 2200:
                raise unreadable
            return day, None
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise unreadable from None
    # Years near 1 or 9999 overflow once a zone or a window is applied.
    if not 1900 <= moment.year <= 2200:
        raise unreadable
    moment = moment.replace(tzinfo=zone) if moment.tzinfo is None else moment
    return moment.astimezone(zone).date(), moment


def _given(raw: object) -> bool:
    """Something was said (template text the assistant did not fill in counts as nothing)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return True
    return isinstance(raw, str) and bool(raw.strip()) and not looks_like_template(raw)


def read_phone(raw: object, region: str) -> str | None:
    """The E.164 form of a phone argument; None when absent; ToolError when unreadable.

    An unreadable number is never replaced by the caller's own: booking under a number the
    caller did not mean is worse than asking again.
    """
    phone = normalize_phone(raw, region)
    if phone is None and _given(raw):
        raise ToolError(
            f"I could not understand the phone number {str(raw).strip()[:40]!r}. "
            "Please ask the caller to repeat it, with the area code."
        )
    return phone


def read_email(raw: object) -> str | None:
    """The normalised email argument; None when absent; ToolError when unreadable."""
    email = normalize_email(raw)
    if email is None and _given(raw):
        raise ToolError(
            f"The email {str(raw).strip()[:60]!r} does not look valid. "
            "Please ask the caller to spell it again."
        )
    return email


def identify_caller(
    *,
    region: str,
    name: str | None,
    phone_argument: object,
    email_argument: object,
    verified_number: str | None,
) -> CallerIdentity:
    """Whom a booking is for: the phone argument (booking for someone else is allowed), else
    the verified caller's own number, else the email; no database."""
    phone = read_phone(phone_argument, region) or verified_number
    identity = CallerIdentity(phone=phone, email=read_email(email_argument), name=name)
    if not identity.known:
        raise ToolError("I need the caller's phone number or email address to make the booking.")
    return identity
