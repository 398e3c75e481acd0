"""What a caller is sent, and when: confirmations and reminders by SMS and email.

Planned from the domain events in the transaction that makes the change (like the outbox), so a
message exists if and only if its change committed; the worker sends what is due. Pure: the
unit of work supplies the organization's settings and the caller's phone, and writes the rows.

When (times are the organization's zone):
- booked → a confirmation now, and a reminder at each offset (default 24 h and 2 h before) that
  is still in the future; rescheduled → a "moved" message now, the pending reminders dropped
  and planned again for the new time; cancelled → a cancellation now, pending reminders dropped;
  completed / no-show → pending reminders dropped.
- An offset in whole days means the same local time that many days before (a 24 h reminder for
  Monday 10:00 is sent Sunday 10:00, also across a DST change: 23 or 25 real hours); any other
  offset is elapsed time (2 h before is 2 real hours before).
- Quiet hours (SMS only): a reminder due inside them goes out one minute before they start (the
  evening before), or not at all if that has passed; anything else due inside them waits for
  their end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from booking_service.domain.events import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentEvent,
    AppointmentRescheduled,
)
from booking_service.domain.times import spoken_datetime

CONFIRMATION, REMINDER, RESCHEDULED, CANCELLED = (
    "confirmation",
    "reminder",
    "rescheduled",
    "cancelled",
)
SMS, EMAIL = "sms", "email"
# At most this many messages to one number (or address) per organization in 24 hours.
DAILY_LIMIT = 5
STOP_LINE = "Reply STOP to opt out."
# What a confirmation or reminder asks (#29): digits, never a word carriers or Twilio treat as
# an opt-out or help keyword ("cancel" would unsubscribe the caller from every text).
REPLY_LINE = "Reply 1 to confirm or 2 to cancel."
# A freed time offered to a waiting caller (#29); not a confirmation, so no REPLY_LINE.
WAITLIST_OFFER = "waitlist_offer"


@dataclass(frozen=True)
class Audience:
    """Who may be sent what for one appointment (read in the change's transaction)."""

    business: str
    zone: ZoneInfo
    reminder_minutes: tuple[int, ...]
    quiet: tuple[time, time] | None
    phone: str | None  # the booked contact's number, when SMS may go to it
    email: str | None  # the address the appointment was booked with, when email is on


@dataclass(frozen=True)
class PlannedMessage:
    """A row for the notifications table."""

    kind: str
    channel: str
    to_address: str
    due_at: datetime
    body: str
    offset_minutes: int | None = None


def text(kind: str, event: AppointmentEvent, business: str, zone: ZoneInfo) -> str:
    """The message: weekday, date and local time, the business, the reference. Short enough for
    a lock screen, plain enough to be read aloud."""
    when = spoken_datetime(event.starts_at.astimezone(zone))
    ref = f"Reference {event.reference}."
    if kind == CONFIRMATION:
        return f"{business}: you're booked for {when}. {ref}"
    if kind == REMINDER:
        return f"{business}: a reminder of your appointment on {when}. {ref}"
    if kind == RESCHEDULED:
        return f"{business}: your appointment has moved to {when}. {ref}"
    return f"{business}: your appointment on {when} is cancelled. {ref}"


def sms_text(kind: str, event: AppointmentEvent, business: str, zone: ZoneInfo) -> str:
    """The SMS: the message, how to answer it (confirmations and reminders), how to opt out."""
    answer = f" {REPLY_LINE}" if kind in (CONFIRMATION, REMINDER) else ""
    return f"{text(kind, event, business, zone)}{answer} {STOP_LINE}"


# The messages that carry the caller's manage link (a cancelled appointment's is dead).
LINKED_KINDS = (CONFIRMATION, REMINDER, RESCHEDULED)


def with_manage_link(kind: str, body: str, link: str | None) -> str:
    """The body with the caller's manage link (#28), before an SMS's opt-out line; as it is
    for a cancellation or without a link. Applied when the message is sent, so the stored
    body stays free of the link (a credential) and any rule planning messages is untouched."""
    if link is None or kind not in LINKED_KINDS:
        return body
    # Not "change or cancel": a caller who reads "cancel" may text it back, and CANCEL is an
    # opt-out keyword for Twilio and the carriers (it would end every text, not the booking).
    line = f"Manage your appointment: {link}"
    # The link goes before what the caller may answer (1 or 2, #29), so the text still ends
    # with the replies and the opt-out line.
    for tail in (f"{REPLY_LINE} {STOP_LINE}", STOP_LINE):
        if body.endswith(tail):
            return f"{body[: -len(tail)]}{line} {tail}"
    return f"{body}\n\n{line}"


def reminder_due(starts_at: datetime, minutes: int, zone: ZoneInfo) -> datetime:
    """When a reminder `minutes` before `starts_at` is due (whole days: same local time)."""
    if minutes % 1440 == 0:
        local = starts_at.astimezone(zone).replace(tzinfo=None) - timedelta(days=minutes // 1440)
        # fold=0: an ambiguous wall time is its first occurrence; a skipped one moves forward.
        return local.replace(tzinfo=zone).astimezone(UTC)
    return starts_at.astimezone(UTC) - timedelta(minutes=minutes)


def in_quiet(moment: datetime, quiet: tuple[time, time], zone: ZoneInfo) -> bool:
    """Whether `moment` falls inside quiet hours [from, until) (which may wrap midnight)."""
    start, end = quiet
    now = moment.astimezone(zone).time()
    if start <= end:
        return start <= now < end
    return now >= start or now < end


def _quiet_edge(moment: datetime, quiet: tuple[time, time], zone: ZoneInfo, edge: str) -> datetime:
    """The start (edge="start") of the quiet period containing `moment`, or its end."""
    start, end = quiet
    local = moment.astimezone(zone)
    day = local.date()
    if edge == "start":
        begins = day if start <= local.time() else day - timedelta(days=1)
        return datetime.combine(begins, start).replace(tzinfo=zone).astimezone(UTC)
    ends = day if local.time() < end else day + timedelta(days=1)
    return datetime.combine(ends, end).replace(tzinfo=zone).astimezone(UTC)


def sms_due(kind: str, due: datetime, now: datetime, audience: Audience) -> datetime | None:
    """When an SMS due at `due` may go out given quiet hours; None: not at all."""
    if audience.quiet is None or not in_quiet(due, audience.quiet, audience.zone):
        return due
    if kind == REMINDER:
        before = _quiet_edge(due, audience.quiet, audience.zone, "start") - timedelta(minutes=1)
        return before if before > now else None
    return _quiet_edge(due, audience.quiet, audience.zone, "end")


def plan(event: AppointmentEvent, audience: Audience, now: datetime) -> list[PlannedMessage]:
    """The messages an event causes (see the module's docstring for when)."""
    if isinstance(event, AppointmentBooked):
        kind = CONFIRMATION
    elif isinstance(event, AppointmentRescheduled):
        kind = RESCHEDULED
    elif isinstance(event, AppointmentCancelled):
        kind = CANCELLED
    else:
        return []
    planned: list[PlannedMessage] = []
    moments: list[tuple[str, datetime, int | None]] = [(kind, now, None)]
    if kind != CANCELLED:
        for minutes in sorted(set(audience.reminder_minutes), reverse=True):
            due = reminder_due(event.starts_at, minutes, audience.zone)
            if due > now:
                moments.append((REMINDER, due, minutes))
    for what, due, offset in moments:
        if audience.phone:
            when = sms_due(what, due, now, audience)
            if when is not None:
                body = sms_text(what, event, audience.business, audience.zone)
                planned.append(PlannedMessage(what, SMS, audience.phone, when, body, offset))
        if audience.email:
            body = text(what, event, audience.business, audience.zone)
            planned.append(PlannedMessage(what, EMAIL, audience.email, due, body, offset))
    # Two reminders pressed into one moment by quiet hours would say the same thing twice.
    unique: dict[tuple[str, str, datetime, str], PlannedMessage] = {}
    for message in planned:
        unique.setdefault(
            (message.channel, message.to_address, message.due_at, message.body), message
        )
    return list(unique.values())


def email_subject(kind: str, business: str) -> str:
    return {
        CONFIRMATION: f"Your appointment with {business} is booked",
        REMINDER: f"Reminder: your appointment with {business}",
        RESCHEDULED: f"Your appointment with {business} has moved",
        CANCELLED: f"Your appointment with {business} is cancelled",
    }[kind]


def calendar_uid(org_id: int, reference: str) -> str:
    """The iCalendar UID of an appointment: the same in every invitation and calendar push, so
    a calendar updates or removes the one event instead of adding another."""
    return f"{reference.lower()}-{org_id}@booking-service"
