"""Booking an appointment for a caller."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from booking_service.services.contacts import CallerIdentity, resolve_contact
from booking_service.services.orgs import OrgInfo
from booking_service.services.times import minutes
from booking_service.unit_of_work import AbstractUnitOfWork

log = logging.getLogger(__name__)

# Speakable references: no look-alikes (0/O, 1/I/L, 5/S, 2/Z, 8/B) so a caller can read one back.
REFERENCE_ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
REFERENCE_LENGTH = 6
_REFERENCE_ATTEMPTS = 8


def new_reference() -> str:
    """A random 6-character reference from the speakable alphabet."""
    return "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


@dataclass(frozen=True)
class BookingRequest:
    """A validated booking: who, when (aware), for how long, and what for."""

    who: CallerIdentity
    starts_at: datetime
    duration_minutes: int | None
    service: str | None
    notes: str | None


@dataclass(frozen=True)
class Booking:
    """A booked appointment as the caller will hear it."""

    reference: str
    contact_id: int
    contact_name: str | None
    starts_at: datetime
    ends_at: datetime
    service: str | None
    contact_path: str


def book_appointment(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    request: BookingRequest,
    *,
    vapi_call_id: str | None,
    tool_call_id: str | None,
) -> Booking:
    """Resolve the caller's contact and insert the appointment, in the caller's transaction.

    The caller (answer_once) commits together with the idempotency ledger.
    """
    resolved = resolve_contact(uow, org.id, request.who)
    duration = request.duration_minutes or org.appointment_minutes
    ends_at = request.starts_at + minutes(duration)
    for _ in range(_REFERENCE_ATTEMPTS):
        appointment = uow.appointments.insert(
            org_id=org.id,
            contact_id=resolved.contact.id,
            reference=new_reference(),
            starts_at=request.starts_at,
            ends_at=ends_at,
            service=request.service,
            notes=request.notes,
            vapi_call_id=vapi_call_id,
            tool_call_id=tool_call_id,
        )
        if appointment is not None:
            break
    else:  # pragma: no cover - 25^6 references; eight collisions in a row mean a bug
        raise RuntimeError("could not find a free appointment reference")
    log.info(
        "appointment booked: reference=%s contact_path=%s",
        appointment.reference,
        resolved.path,
    )
    return Booking(
        reference=appointment.reference,
        contact_id=resolved.contact.id,
        contact_name=resolved.contact.name,
        starts_at=appointment.starts_at,
        ends_at=appointment.ends_at,
        service=appointment.service,
        contact_path=resolved.path,
    )
