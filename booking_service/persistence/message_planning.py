"""What messages a committed change causes: the confirmations and reminders planned
(domain/caller_messages.py) for each event in the same transaction as the change, so a message
exists if and only if its change committed."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from booking_service.domain import caller_messages, outbox, recipients
from booking_service.domain.events import (
    AppointmentBooked,
    AppointmentConfirmed,
    AppointmentEvent,
)
from booking_service.persistence.repositories.notifications import (
    AudienceRow,
    NotificationRepository,
)


def plan_messages(
    messages: NotificationRepository,
    event: AppointmentEvent,
    row: AudienceRow | None,
    now: datetime,
) -> None:
    """Drop the pending messages the event makes obsolete, and add the ones it causes for the
    audience `row` (the outbox statement's answer; None: no contact to send to)."""
    if not isinstance(event, AppointmentBooked | AppointmentConfirmed):
        # It moved, was cancelled or is over: what was waiting no longer fits.
        messages.drop_pending(
            event.org_id, event.appointment_id, f"superseded ({outbox.event_type(event)})"
        )
    if row is None or not (row.sms_enabled or row.email_enabled):
        return
    audience = caller_messages.Audience(
        business=row.business,
        zone=ZoneInfo(row.timezone),
        reminder_minutes=tuple(row.reminder_minutes),
        quiet=(row.quiet_from, row.quiet_until)
        if row.quiet_from is not None and row.quiet_until is not None
        else None,
        # Only the number the appointment's contact holds, only one that can take a text
        # (recipients.py), only in allowed countries; email only to a public domain name.
        phone=row.phone
        if row.sms_enabled
        and recipients.may_text(
            row.phone, recipients.sms_countries(row.sms_countries, row.phone_region)
        )
        else None,
        email=event.email if row.email_enabled and recipients.may_email(event.email) else None,
    )
    messages.add(event.org_id, event.appointment_id, caller_messages.plan(event, audience, now))
