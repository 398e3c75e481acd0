"""A caller's own appointments: find, cancel, reschedule.

Every lookup is scoped to the organization and to the contact identified by the caller's
phone or email, so a caller can never read, cancel or move someone else's appointment.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime

from booking_service.errors import ExclusionViolation, ToolError
from booking_service.metrics import BOOKING_CONFLICTS
from booking_service.models import Appointment
from booking_service.repositories import ContactRow
from booking_service.services.availability import choose_resources, load_catalogue
from booking_service.services.booking import refuse, verdict_for
from booking_service.services.contacts import CallerIdentity, require_identity
from booking_service.services.orgs import OrgInfo
from booking_service.services.times import ParsedStart, spoken_datetime
from booking_service.unit_of_work import AbstractUnitOfWork

log = logging.getLogger(__name__)

NOT_FOUND = "I could not find that appointment for you. Please check the reference or the time."


@dataclass(frozen=True)
class AppointmentView:
    """An appointment as the caller hears it."""

    reference: str
    starts_at: datetime
    ends_at: datetime
    service: str | None
    resource: str
    status: str


def _resource_names(uow: AbstractUnitOfWork, org: OrgInfo) -> dict[int, str]:
    return load_catalogue(uow, org).resource_names()


def _view(appointment: Appointment, names: dict[int, str]) -> AppointmentView:
    return AppointmentView(
        reference=appointment.reference,
        starts_at=appointment.starts_at,
        ends_at=appointment.ends_at,
        service=appointment.service,
        resource=names.get(appointment.resource_id, ""),
        status=appointment.status,
    )


def find_contact(uow: AbstractUnitOfWork, org_id: int, who: CallerIdentity) -> ContactRow | None:
    """The caller's existing contact; never creates one.

    By phone when there is one (never falling back to an email, which another contact with
    a phone may share); by email only among phone-less contacts, whose email is unique.
    """
    require_identity(who)
    if who.phone:
        return uow.contacts.find_by_phone(org_id, who.phone)
    return uow.contacts.find_phoneless_by_email(org_id, who.email)


def normalize_reference(raw: str | None) -> str | None:
    """'k7m-2qx' or 'K 7 M 2 Q X' → 'K7M2QX'."""
    if not raw:
        return None
    return re.sub(r"[^A-Za-z0-9]", "", raw).upper() or None


def find_appointments(
    uow: AbstractUnitOfWork, org: OrgInfo, who: CallerIdentity, now: datetime
) -> list[AppointmentView]:
    """The caller's upcoming booked appointments, soonest first."""
    with uow:
        contact = find_contact(uow, org.id, who)
        if contact is None:
            return []
        upcoming = uow.appointments.upcoming(org.id, contact.id, now)
        names = _resource_names(uow, org) if upcoming else {}
        return [_view(a, names) for a in upcoming]


def _own_appointment(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    who: CallerIdentity,
    reference: str | None,
    start: ParsedStart | None,
) -> Appointment:
    contact = find_contact(uow, org.id, who)
    if contact is None:
        raise ToolError(NOT_FOUND)
    found = uow.appointments.of_contact(
        org.id,
        contact.id,
        reference=normalize_reference(reference),
        starts_at=start.start if start else None,
    )
    if found is None:
        raise ToolError(NOT_FOUND)
    return found


@dataclass(frozen=True)
class Cancellation:
    """The outcome of a cancel request."""

    appointment: AppointmentView
    already_cancelled: bool


def cancel_appointment(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    who: CallerIdentity,
    *,
    reference: str | None,
    start: ParsedStart | None,
    reason: str | None,
) -> Cancellation:
    """Cancel the caller's own appointment (a status change, never a delete); not committed."""
    appointment = _own_appointment(uow, org, who, reference, start)
    names = _resource_names(uow, org)
    if appointment.status == "cancelled":
        return Cancellation(_view(appointment, names), already_cancelled=True)
    uow.appointments.cancel(appointment, reason)
    log.info("appointment cancelled: reference=%s", appointment.reference)
    return Cancellation(_view(appointment, names), already_cancelled=False)


@dataclass(frozen=True)
class Rescheduling:
    """The outcome of a move: where it was and where it is now."""

    before: datetime
    appointment: AppointmentView
    previous_resource: str = ""


def reschedule_appointment(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    who: CallerIdentity,
    *,
    reference: str | None,
    start: ParsedStart | None,
    new_start: ParsedStart,
    now: datetime,
) -> Rescheduling:
    """Move the caller's appointment in place (same reference), atomically; not committed.

    The new time passes the same rules and the same exclusion constraint as a booking; if it
    is taken, the original booking stays as it was and the caller hears alternatives.
    """
    appointment = _own_appointment(uow, org, who, reference, start)
    if appointment.status != "booked":
        raise ToolError(
            f"The appointment {appointment.reference} was cancelled, so it cannot be moved. "
            "Would you like to book a new one?"
        )
    before = appointment.starts_at
    duration = appointment.ends_at - appointment.starts_at
    catalogue = load_catalogue(uow, org)
    resources = choose_resources(catalogue, None)
    names = catalogue.resource_names()
    previous_resource = names.get(appointment.resource_id, "")
    # Its own resource first: moving within one person's diary is what callers expect.
    free = verdict_for(
        uow, org, resources, new_start, duration, now, exclude_appointment=appointment.id
    )
    free.sort(key=lambda rid: rid != appointment.resource_id)
    for resource_id in free:
        try:
            with uow.savepoint():
                uow.appointments.move(
                    appointment,
                    resource_id=resource_id,
                    starts_at=new_start.start,
                    ends_at=new_start.start + duration,
                    blocked_until=new_start.start + duration + org.rules.buffer,
                )
        except ExclusionViolation:
            BOOKING_CONFLICTS.inc()
            continue
        log.info("appointment rescheduled: reference=%s", appointment.reference)
        return Rescheduling(before, _view(appointment, names), previous_resource)
    local = new_start.start.astimezone(org.zone)
    raise refuse(
        uow,
        org,
        resources,
        f"Sorry, {spoken_datetime(local)} was just taken, so your appointment stays at "
        f"{spoken_datetime(before.astimezone(org.zone))}.",
        new_start.start,
        duration,
        now,
        exclude_appointment=appointment.id,
    )
