"""What leaves the service: each domain event as the JSON body a webhook receiver gets.

Body `{"type", "timestamp", "data"}`; times in `data` are ISO 8601 with the business's offset,
`timestamp` is when the event happened (UTC). The contact's phone is not part of the domain
event; the outbox statement fills `data.phone` from the contact in the same transaction.
The README's "Events out" documents this shape; keep them in step.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from booking_service.domain.events import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentCompleted,
    AppointmentConfirmed,
    AppointmentEvent,
    AppointmentNoShow,
    AppointmentRescheduled,
)

BOOKED = "appointment.booked"
RESCHEDULED = "appointment.rescheduled"
CANCELLED = "appointment.cancelled"
COMPLETED = "appointment.completed"
NO_SHOW = "appointment.no_show"
# The caller replied 1 (or yes, confirm) to a confirmation or reminder (#29).
CONFIRMED = "appointment.confirmed"
# Not about one appointment: the organization's daily SMS or email budget is used up (#24).
BUDGET_REACHED = "messages.budget_reached"
# Not about one appointment: a voice platform reported a finished call (#27).
CALL_ENDED = "call.ended"
# A linked calendar's grant was revoked or expired: its owner must connect it again (#26).
CALENDAR_DISCONNECTED = "calendar.disconnected"
# The waitlist (#29): a freed time was texted to a waiting caller; their YES booked it.
WAITLIST_OFFERED = "waitlist.offered"
WAITLIST_BOOKED = "waitlist.booked"
EVENT_TYPES = (
    BOOKED,
    RESCHEDULED,
    CANCELLED,
    COMPLETED,
    NO_SHOW,
    BUDGET_REACHED,
    CALENDAR_DISCONNECTED,
    CONFIRMED,
    WAITLIST_OFFERED,
    WAITLIST_BOOKED,
    CALL_ENDED,
)

_TYPES: dict[type[AppointmentEvent], str] = {
    AppointmentBooked: BOOKED,
    AppointmentRescheduled: RESCHEDULED,
    AppointmentCancelled: CANCELLED,
    AppointmentCompleted: COMPLETED,
    AppointmentNoShow: NO_SHOW,
    AppointmentConfirmed: CONFIRMED,
}
_STATUSES: dict[type[AppointmentEvent], str] = {
    AppointmentCancelled: "cancelled",
    AppointmentCompleted: "completed",
    AppointmentNoShow: "no_show",
}


def new_event_id() -> str:
    """The public id of an event (`webhook-id`): the same on every attempt and replay."""
    return f"msg_{uuid.uuid4().hex}"


def event_type(event: AppointmentEvent) -> str:
    return _TYPES[type(event)]


def payload(event: AppointmentEvent, *, source: str, at: datetime) -> dict:
    """The body for `event`; `phone` is filled in by the outbox statement."""
    zone = ZoneInfo(event.timezone)
    data: dict = {
        "organizationId": event.org_id,
        "reference": event.reference,
        "status": _STATUSES.get(type(event), "booked"),
        "start": event.starts_at.astimezone(zone).isoformat(),
        "end": event.ends_at.astimezone(zone).isoformat(),
        "timezone": event.timezone,
        "resource": event.resource,
        "service": event.service,
        "name": event.name,
        "phone": None,
        "email": event.email,
        "source": source,
    }
    if isinstance(event, AppointmentRescheduled):
        previous = event.previous_start
        data["previousStart"] = previous.astimezone(zone).isoformat() if previous else None
    if isinstance(event, AppointmentCancelled):
        data["reason"] = event.reason
    return {"type": event_type(event), "timestamp": at.isoformat(), "data": data}


def budget_payload(org_id: int, channel: str, budget: int, day: str, at: datetime) -> dict:
    """The body of `messages.budget_reached`: which channel, its daily budget, the local day."""
    data = {"organizationId": org_id, "channel": channel, "budget": budget, "day": day}
    return {"type": BUDGET_REACHED, "timestamp": at.isoformat(), "data": data}


def disconnected_payload(
    org_id: int, link_id: int, resource_id: int, provider: str, reason: str, at: datetime
) -> dict:
    """The body of `calendar.disconnected`: which link, of which resource, why."""
    data = {
        "organizationId": org_id,
        "linkId": link_id,
        "resourceId": resource_id,
        "provider": provider,
        "reason": reason,
    }
    return {"type": CALENDAR_DISCONNECTED, "timestamp": at.isoformat(), "data": data}


def waitlist_payload(
    event_type: str,
    org_id: int,
    entry_id: int,
    starts_at: datetime,
    resource: str,
    timezone: str,
    at: datetime,
    reference: str | None = None,
) -> dict:
    """The body of `waitlist.offered` / `waitlist.booked`: the entry, the time offered (and the
    booking's reference once booked). No phone: the owner's page and CLI show it masked."""
    data = {
        "organizationId": org_id,
        "entryId": entry_id,
        "start": starts_at.astimezone(ZoneInfo(timezone)).isoformat(),
        "resource": resource,
        "reference": reference,
    }
    return {"type": event_type, "timestamp": at.isoformat(), "data": data}


def call_payload(org_id: int, call: dict, at: datetime) -> dict:
    """The body of `call.ended`: the stored call report (`call`: platform, callId, startedAt,
    endedAt, endedReason, summary, references, outcome), as the platform reported it."""
    data = {"organizationId": org_id, **call}
    return {"type": CALL_ENDED, "timestamp": at.isoformat(), "data": data}
