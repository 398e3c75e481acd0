"""What the owner's web page reads about one appointment: its details (notes included, for
staff only), its history from the outbox and the tool calls of the VAPI call that made it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service.persistence.db import table
from booking_service.persistence.models import Appointment, Contact, OutboxEvent, Resource, ToolCall
from booking_service.persistence.repositories.common import WITH_CONTACT_AND_RESOURCE

_appointments = table(Appointment)
_contacts = table(Contact)
_resources = table(Resource)
_events = table(OutboxEvent)
_tool_calls = table(ToolCall)


@dataclass(frozen=True)
class AppointmentDetail:
    """One appointment as staff see it."""

    id: int
    org_id: int
    reference: str
    starts_at: datetime
    ends_at: datetime
    status: str
    resource_id: int
    resource: str
    service: str | None
    name: str | None
    phone: str | None
    email: str | None
    notes: str | None
    cancellation_reason: str | None
    unconfirmed: bool
    vapi_call_id: str | None
    created_at: datetime
    confirmed_at: datetime | None = None  # the caller confirmed it by text (#29)


@dataclass(frozen=True)
class HistoryEntry:
    """One change of an appointment: what, when (UTC) and through which front end."""

    type: str  # appointment.booked / .rescheduled / .cancelled / .completed / .no_show
    at: datetime
    source: str  # vapi, web or cli
    start: str | None  # the start after the change (ISO, the organization's zone)
    previous_start: str | None
    reason: str | None


@dataclass(frozen=True)
class ToolCallEntry:
    """A tool call the assistant made during a VAPI call, as the ledger recorded it."""

    tool: str
    outcome: str  # "result" or "error"
    at: datetime


_DETAIL = select(
    _appointments.c.id,
    _appointments.c.org_id,
    _appointments.c.reference,
    _appointments.c.starts_at,
    _appointments.c.ends_at,
    _appointments.c.status,
    _appointments.c.resource_id,
    _resources.c.name.label("resource"),
    _appointments.c.service,
    _appointments.c.name,
    _contacts.c.phone,
    _appointments.c.email,
    _appointments.c.notes,
    _appointments.c.cancel_reason.label("cancellation_reason"),
    _appointments.c.unconfirmed,
    _appointments.c.vapi_call_id,
    _appointments.c.created_at,
    _appointments.c.confirmed_at,
).select_from(WITH_CONTACT_AND_RESOURCE)


class DiaryRepository:
    """Reads for the owner's pages; every one is scoped to the organization."""

    def __init__(self, session: Session):
        self.session = session

    def detail(self, org_id: int, reference: str) -> AppointmentDetail | None:
        row = self.session.execute(
            _DETAIL.where(_appointments.c.org_id == org_id, _appointments.c.reference == reference)
        ).first()
        return AppointmentDetail(**row._mapping) if row is not None else None

    def history(self, org_id: int, reference: str, since: datetime) -> list[HistoryEntry]:
        """The appointment's events, oldest first. `since` (its creation) keeps the read on
        the (org_id, created_at) index: events of an appointment never predate it."""
        data = _events.c.payload["data"]
        rows = self.session.execute(
            select(
                _events.c.type,
                _events.c.created_at,
                data["source"].astext,
                data["start"].astext,
                data["previousStart"].astext,
                data["reason"].astext,
            )
            .where(
                _events.c.org_id == org_id,
                _events.c.created_at >= since,
                data["reference"].astext == reference,
            )
            .order_by(_events.c.created_at, _events.c.id)
        )
        return [HistoryEntry(*row) for row in rows]

    def tool_calls(self, org_id: int, vapi_call_id: str) -> list[ToolCallEntry]:
        """The answered tool calls of one VAPI call, oldest first (outcome only: what the
        caller said stays in the ledger)."""
        rows = self.session.execute(
            select(_tool_calls.c.tool_name, _tool_calls.c.answer, _tool_calls.c.created_at)
            .where(
                _tool_calls.c.org_id == org_id,
                # The ledger's limit key of a call is "call:<id>", which its index covers.
                _tool_calls.c.limit_key == f"call:{vapi_call_id}",
                _tool_calls.c.vapi_call_id == vapi_call_id,
            )
            .order_by(_tool_calls.c.created_at, _tool_calls.c.id)
            .limit(100)
        )
        return [
            ToolCallEntry(
                tool=name,
                outcome="error" if isinstance(answer, dict) and "error" in answer else "result",
                at=at,
            )
            for name, answer, at in rows
        ]
