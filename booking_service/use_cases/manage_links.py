"""What a caller can do with the manage link of a confirmation or reminder (#28): see that one
appointment, cancel it, or move it to another free time, through the same steps as the voice
tools and the owner's page (cancel_appointment, reschedule_appointment), so events, messages,
calendar pushes and webhooks follow.

The link is proof for its one appointment (domain/manage_links.py) while the appointment is
booked and has not ended; otherwise, and for any token that is not genuine, NotFound, the
same whatever the reason, so a link tells nothing about other bookings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from booking_service.config import Settings
from booking_service.domain.errors import NotFound
from booking_service.domain.manage_links import manage_token, manage_url, read_manage_token
from booking_service.domain.times import ParsedStart
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases.appointments import (
    AppointmentView,
    Cancellation,
    Rescheduling,
    StaffAccess,
    cancel_appointment,
    reschedule_appointment,
)
from booking_service.use_cases.catalogue import load_catalogue
from booking_service.use_cases.diary import FreeStart, free_starts
from booking_service.use_cases.orgs import OrgInfo, get_org_in


def link_keys(settings: Settings) -> tuple[str, ...]:
    """The keys that sign manage links: older SECRET_KEYs first, then SECRET_KEY; none
    without SECRET_KEY (then no link is sent and none opens)."""
    if not settings.secret_key:
        return ()
    previous = [k.strip() for k in settings.secret_key_previous.split(",") if k.strip()]
    return (*previous, settings.secret_key)


def manage_link(settings: Settings, org_id: int, appointment_id: int) -> str | None:
    """The caller's link to one appointment, or None without SECRET_KEY."""
    keys = link_keys(settings)
    if not keys:
        return None
    return manage_url(settings.base_url, manage_token(keys, org_id, appointment_id))


@dataclass(frozen=True)
class Linked:
    """The appointment a live link opens, and its organization."""

    org: OrgInfo
    appointment: AppointmentView


def _linked(
    uow: AbstractUnitOfWork, keys: Sequence[str], token: str, now: datetime
) -> tuple[OrgInfo, str]:
    """(the organization, the reference) of a live link's appointment, in the caller's
    transaction; NotFound otherwise."""
    ids = read_manage_token(keys, token)
    if ids is None:
        raise NotFound("booking")
    org_id, appointment_id = ids
    row = uow.appointments.get(org_id, appointment_id)
    if row is None or row.status != "booked" or row.ends_at <= now:
        raise NotFound("booking")
    return get_org_in(uow, org_id), row.reference


def open_link(uow: AbstractUnitOfWork, keys: Sequence[str], token: str, now: datetime) -> Linked:
    """The appointment of a live link; NotFound for a dead or false one."""
    with uow:
        org, reference = _linked(uow, keys, token, now)
        row = uow.appointments.by_reference(org.id, reference)
        if row is None:  # pragma: no cover - read in this transaction just now
            raise NotFound("booking")
        names = load_catalogue(uow, org).resource_names()
    view = AppointmentView(
        reference=row.reference,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        service=row.service,
        resource=names.get(row.resource_id, ""),
        status=row.status,
        name=row.name,
    )
    return Linked(org, view)


def cancel_by_link(
    uow: AbstractUnitOfWork, keys: Sequence[str], token: str, now: datetime
) -> Cancellation:
    """Cancel the link's appointment (not once it has started); commits. The link is dead
    afterwards."""
    with uow:
        org, reference = _linked(uow, keys, token, now)
        outcome = cancel_appointment(
            uow, org, StaffAccess(reference), start=None, reason="cancelled by the caller", now=now
        )
        uow.commit()
    return outcome


def move_by_link(
    uow: AbstractUnitOfWork, keys: Sequence[str], token: str, new_start: datetime, now: datetime
) -> Rescheduling:
    """Move the link's appointment to a free `new_start` (same rules as any move); commits.
    StartRefused with alternatives when that time is not free."""
    with uow:
        org, reference = _linked(uow, keys, token, now)
        moved = reschedule_appointment(
            uow, org, StaffAccess(reference), start=None, new_start=ParsedStart(new_start), now=now
        )
        uow.commit()
    return moved


def free_starts_for(
    uow: AbstractUnitOfWork, linked: Linked, day: date, now: datetime
) -> list[FreeStart]:
    """The free starts of a day for an appointment as long as the link's."""
    minutes = int((linked.appointment.ends_at - linked.appointment.starts_at).total_seconds() // 60)
    return free_starts(uow, linked.org, day, now, minutes=minutes)
