"""Existing appointments: find, cancel, reschedule, reachable only with proof.

What a caller says (a phone number, an email, a name) is a claim. An appointment is reached
only through proof:
- on a phone call with a verified caller ID, exactly the appointments booked under that
  number: arguments cannot name anybody else's;
- without a verified caller (web calls, chats, withheld numbers), a booking reference together
  with the phone number or email it was booked with reaches that one appointment.
Anything else is refused with NeedProof (nothing given) or NoMatch (the same whether or not such
a booking exists). Staff signed in to the owner's web page reach any appointment of their own
organization by reference (StaffAccess). Every lookup is scoped to the organization.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime

from booking_service.domain.errors import (
    AlreadyStarted,
    AppointmentNotFound,
    AppointmentNotMarkable,
    CancelledAppointment,
    ExclusionViolation,
    NeedProof,
    NoMatch,
    NotFound,
    StartRefused,
)
from booking_service.domain.events import (
    AppointmentCancelled,
    AppointmentCompleted,
    AppointmentNoShow,
    AppointmentRescheduled,
    appointment_event,
)
from booking_service.domain.times import ParsedStart
from booking_service.persistence.repositories.appointments import AppointmentRow
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.runtime.metrics import BOOKING_CONFLICTS
from booking_service.use_cases.catalogue import choose_resources, load_catalogue
from booking_service.use_cases.openings import openings_at, refused
from booking_service.use_cases.orgs import OrgInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Proof:
    """What a request can show: the caller ID of a phone call (verified), and what the caller
    says (a reference, a phone number, an email), which counts only all together."""

    verified_number: str | None
    reference: str | None = None
    phone: str | None = None
    email: str | None = None

    @property
    def by_reference(self) -> bool:
        """Reference plus phone or email, which counts only without a verified caller."""
        return self.verified_number is None and bool(self.reference and (self.phone or self.email))


@dataclass(frozen=True)
class StaffAccess:
    """A signed-in user of the organization acting on its diary: the reference is enough,
    because the session, not the caller, is the proof."""

    reference: str


@dataclass(frozen=True)
class AppointmentView:
    """An appointment as the caller who may reach it hears it."""

    reference: str
    starts_at: datetime
    ends_at: datetime
    service: str | None
    resource: str
    status: str
    name: str | None


def _resource_names(uow: AbstractUnitOfWork, org: OrgInfo) -> dict[int, str]:
    return load_catalogue(uow, org).resource_names()


def _name(names: dict[int, str], appointment: AppointmentRow) -> str:
    return names.get(appointment.resource_id, "")


def _view(appointment: AppointmentRow, names: dict[int, str]) -> AppointmentView:
    return AppointmentView(
        reference=appointment.reference,
        starts_at=appointment.starts_at,
        ends_at=appointment.ends_at,
        service=appointment.service,
        resource=_name(names, appointment),
        status=appointment.status,
        name=appointment.name,
    )


def normalize_reference(raw: str | None) -> str | None:
    """'k7m-2qx' or 'K 7 M 2 Q X' → 'K7M2QX'."""
    if not raw:
        return None
    return re.sub(r"[^A-Za-z0-9]", "", raw).upper() or None


def find_appointments(
    uow: AbstractUnitOfWork, org: OrgInfo, proof: Proof, now: datetime
) -> list[AppointmentView]:
    """The appointments this proof reaches: the verified caller's upcoming booked ones, soonest
    first; else the one named by reference with the phone or email it was booked with (any
    status). Raises NeedProof or NoMatch when there is no proof."""
    with uow:
        if proof.by_reference:
            return find_by_reference(uow, org, proof)
        if proof.verified_number is None:
            raise NeedProof()
        contact = uow.contacts.find_by_phone(org.id, proof.verified_number)
        if contact is None:
            return []
        upcoming = uow.appointments.upcoming(org.id, contact.id, now)
        names = _resource_names(uow, org) if upcoming else {}
        return [_view(a, names) for a in upcoming]


def find_by_reference(uow: AbstractUnitOfWork, org: OrgInfo, proof: Proof) -> list[AppointmentView]:
    """The one appointment named by reference with the phone or email it was booked with, in
    the caller's transaction; NoMatch otherwise."""
    reference = normalize_reference(proof.reference)
    found = (
        uow.appointments.by_reference_and_proof(
            org.id, reference, phone=proof.phone, email=proof.email
        )
        if reference is not None
        else None
    )
    if found is None:
        raise NoMatch()
    return [_view(found, _resource_names(uow, org))]


def _reachable_appointment(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    proof: Proof | StaffAccess,
    start: ParsedStart | None,
) -> AppointmentRow:
    """The one appointment the proof reaches (by reference or current start), locked."""
    if isinstance(proof, StaffAccess):
        staff_reference = normalize_reference(proof.reference)
        found = uow.appointments.by_reference(org.id, staff_reference) if staff_reference else None
        if found is None:
            raise AppointmentNotFound()
        return found
    reference = normalize_reference(proof.reference)
    starts_at = start.start if start else None
    if proof.verified_number is not None:
        contact = uow.contacts.find_by_phone(org.id, proof.verified_number)
        found = (
            uow.appointments.of_contact(
                org.id, contact.id, reference=reference, starts_at=starts_at
            )
            if contact is not None
            else None
        )
        if found is None:
            raise AppointmentNotFound()
        return found
    if proof.by_reference:
        if reference is None:  # nothing left of it once spaces and dashes are gone
            raise NoMatch()
        found = uow.appointments.by_reference_and_proof(
            org.id,
            reference,
            phone=proof.phone,
            email=proof.email,
            starts_at=starts_at,
            lock=True,
        )
        if found is None:
            raise NoMatch()
        return found
    raise NeedProof()


def _not_started(appointment: AppointmentRow, now: datetime, action: str) -> None:
    if appointment.starts_at <= now:
        raise AlreadyStarted(appointment.reference, action)


@dataclass(frozen=True)
class Cancellation:
    """The outcome of a cancel request."""

    appointment: AppointmentView
    already_cancelled: bool


def cancel_appointment(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    proof: Proof | StaffAccess,
    *,
    start: ParsedStart | None,
    reason: str | None,
    now: datetime,
) -> Cancellation:
    """Cancel the appointment the proof reaches (a status change, never a delete), if it has
    not started; not committed."""
    appointment = _reachable_appointment(uow, org, proof, start)
    names = _resource_names(uow, org)
    if appointment.status == "cancelled":
        return Cancellation(_view(appointment, names), already_cancelled=True)
    _not_started(appointment, now, "cancel")
    cancelled = uow.appointments.cancel(org.id, appointment.id, reason)
    log.info("appointment cancelled: reference=%s", cancelled.reference)
    uow.add_event(
        appointment_event(
            AppointmentCancelled,
            org.id,
            org.timezone,
            cancelled,
            _name(names, cancelled),
            reason=reason,
        )
    )
    return Cancellation(_view(cancelled, names), already_cancelled=False)


@dataclass(frozen=True)
class Rescheduling:
    """The outcome of a move: where it was and where it is now."""

    before: datetime
    appointment: AppointmentView
    previous_resource: str = ""


def reschedule_appointment(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    proof: Proof | StaffAccess,
    *,
    start: ParsedStart | None,
    new_start: ParsedStart,
    now: datetime,
) -> Rescheduling:
    """Move the appointment the proof reaches in place (same reference), atomically, if it has
    not started; not committed.

    The new time passes the same rules and the same exclusion constraint as a booking; if it
    is taken, the original booking stays as it was and the caller hears alternatives.
    """
    appointment = _reachable_appointment(uow, org, proof, start)
    if appointment.status != "booked":
        raise CancelledAppointment(appointment.reference)
    _not_started(appointment, now, "move")
    before = appointment.starts_at
    duration = appointment.ends_at - appointment.starts_at
    catalogue = load_catalogue(uow, org)
    resources = choose_resources(catalogue, None)
    names = catalogue.resource_names()
    previous_resource = names.get(appointment.resource_id, "")
    # Its own resource first: moving within one person's diary is what callers expect.
    free = openings_at(
        uow, org, resources, new_start, duration, now, exclude_appointment=appointment.id
    )
    # Stable: among its own and the others, fresh calendars stay ahead of unconfirmed ones.
    ordered = sorted(free.resources, key=lambda rid: rid != appointment.resource_id)
    for resource_id in ordered:
        try:
            with uow.savepoint():
                moved = uow.appointments.move(
                    org.id,
                    appointment.id,
                    resource_id=resource_id,
                    starts_at=new_start.start,
                    ends_at=new_start.start + duration,
                    blocked_until=new_start.start + duration + org.rules.buffer,
                    unconfirmed=resource_id in free.unconfirmed,
                )
        except ExclusionViolation:
            BOOKING_CONFLICTS.inc()
            continue
        log.info("appointment rescheduled: reference=%s", moved.reference)
        uow.add_event(
            appointment_event(
                AppointmentRescheduled,
                org.id,
                org.timezone,
                moved,
                _name(names, moved),
                previous_start=before,
                previous_resource=previous_resource or None,
            )
        )
        return Rescheduling(before, _view(moved, names), previous_resource)
    raise refused(
        uow,
        org,
        resources,
        StartRefused.JUST_TAKEN,
        new_start.start,
        duration,
        now,
        exclude_appointment=appointment.id,
        kept=before,
    )


OUTCOMES = {"completed": AppointmentCompleted, "no_show": AppointmentNoShow}


def mark_outcome(
    uow: AbstractUnitOfWork, org: OrgInfo, reference: str, outcome: str, now: datetime
) -> AppointmentView:
    """Record that a booked appointment that has started took place ("completed") or that the
    caller did not come ("no_show"); an `appointment.<outcome>` event goes out. Opens and
    commits its own unit of work. NotFound for an unknown reference; AppointmentNotMarkable
    when it has not started or is not booked (a cancelled one stays cancelled)."""
    with uow:
        appointment = uow.appointments.by_reference(org.id, reference.strip().upper())
        if appointment is None:
            raise NotFound("appointment", reference)
        if appointment.status == outcome:
            return _view(appointment, _resource_names(uow, org))
        if appointment.status != "booked":
            raise AppointmentNotMarkable(reference, f"it is {appointment.status}")
        if appointment.starts_at > now:
            raise AppointmentNotMarkable(reference, "it has not started yet")
        marked = uow.appointments.set_status(org.id, appointment.id, outcome)
        names = _resource_names(uow, org)
        uow.add_event(
            appointment_event(OUTCOMES[outcome], org.id, org.timezone, marked, _name(names, marked))
        )
        uow.commit()
    return _view(marked, names)
