"""Booking an appointment (a step: it runs inside the caller's transaction, never commits).

Pre-checks (hours, notice, horizon, grid, busy) shape a helpful refusal; the guard against a
double booking is PostgreSQL's exclusion constraint. When the worker keeps the organization's
opening hours and they take the start, the insert comes first and the diary is read only if
the constraint refuses it. Each insert is ON CONFLICT DO NOTHING:
when the constraint refuses it (a concurrent booking took the time) the next free resource is
tried, and when none is left the refusal says the time was just taken, with the nearest
alternatives. No SAVEPOINT is needed, so the transaction stays usable without one.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from booking_service.domain.errors import StartRefused, TooManyUpcoming, UnverifiedBookingsLimit
from booking_service.domain.events import AppointmentBooked, appointment_event
from booking_service.domain.recipients import day_start
from booking_service.domain.scheduling import TAKEN
from booking_service.domain.times import ParsedStart
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.runtime.metrics import BOOKING_CONFLICTS
from booking_service.use_cases.catalogue import choose_resources, choose_service, load_catalogue
from booking_service.use_cases.contacts import CallerIdentity, resolve_contact
from booking_service.use_cases.openings import Openings, cached_openings, openings_at, refused
from booking_service.use_cases.orgs import OrgInfo

log = logging.getLogger(__name__)

# Speakable references: no look-alikes (0/O, 1/I/L, 5/S, 2/Z, 8/B) so a caller can read one back.
REFERENCE_ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
REFERENCE_LENGTH = 6
_REFERENCE_ATTEMPTS = 8
# The org_counters action of bookings for numbers that are not the verified caller's own.
UNVERIFIED_BOOKINGS = "unverified_booking"


def new_reference() -> str:
    """A random 6-character reference from the speakable alphabet."""
    return "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


@dataclass(frozen=True)
class BookingRequest:
    """A validated booking: who, when, for how long, what for, and with whom (optional).

    `own_number`: the verified caller books for the number they call from. Only then may the
    contact's stored name and email change, and only then is a booking the number already
    holds at that time given back whatever call made it.

    `limit_unverified`: a front end where a stranger chooses the number (a voice call) sets it;
    a booking for a phone that is not `own_number` then counts toward the organization's
    daily `unverified_bookings_per_day`.
    """

    who: CallerIdentity
    start: ParsedStart
    duration_minutes: int | None
    service: str | None
    notes: str | None
    resource: str | None = None
    own_number: bool = False
    limit_unverified: bool = False


@dataclass(frozen=True)
class Booking:
    """A booked appointment as the caller will hear it."""

    reference: str
    contact_id: int
    name: str | None  # the name this appointment was booked under
    starts_at: datetime
    ends_at: datetime
    service: str | None
    resource: str
    contact_path: str
    already_booked: bool = False


def _booking(appointment, resource: str, contact, path: str, *, existing=False) -> Booking:
    return Booking(
        reference=appointment.reference,
        contact_id=contact.id,
        name=appointment.name,
        starts_at=appointment.starts_at,
        ends_at=appointment.ends_at,
        service=appointment.service,
        resource=resource,
        contact_path=path,
        already_booked=existing,
    )


def _notes(asked_service: str | None, notes: str | None) -> str | None:
    """What the caller typed, for staff only: a service outside any catalogue, and notes."""
    parts = [f"Service asked for: {asked_service}" if asked_service else None, notes]
    return "\n".join(p for p in parts if p) or None


def book_appointment(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    request: BookingRequest,
    *,
    now: datetime,
    vapi_call_id: str | None,
    tool_call_id: str | None,
) -> Booking:
    """Resolve the caller's contact and book, in the caller's transaction (not committed here).

    A booking the contact already holds at that start is given back instead of a duplicate
    (a model re-issuing the call with a new id), but only to the contact's own verified caller
    or within the VAPI call that made it: anyone else learns nothing about that number's
    bookings. A contact holding `max_upcoming_per_caller` upcoming bookings gets no more.
    """
    catalogue = load_catalogue(uow, org)
    resources = choose_resources(catalogue, request.resource)
    names = catalogue.resource_names()
    choice = choose_service(catalogue, org, request.service, request.duration_minutes)
    duration = timedelta(minutes=choice.minutes)
    resolved = resolve_contact(uow, org.id, request.who, own_number=request.own_number)
    contact = resolved.contact
    if not resolved.path.startswith("phone"):
        # The phone upsert already holds the contact's row; the email paths do not. Without
        # the lock two concurrent bookings could both miss each other below (a duplicate, or
        # one past the cap).
        uow.contacts.lock(org.id, contact.id)

    def holdings() -> tuple[int, Booking | None]:
        if resolved.is_new:  # created just now: nothing can be booked for it yet
            return 0, None
        upcoming, existing_id = uow.appointments.holdings(
            org.id,
            contact.id,
            now=now,
            starts_at=request.start.start,
            vapi_call_id=vapi_call_id,
            any_call=request.own_number,
        )
        found = uow.appointments.get(org.id, existing_id) if existing_id is not None else None
        if found is None:
            return upcoming, None
        log.info("already booked: reference=%s", found.reference)
        return upcoming, _booking(
            found, names.get(found.resource_id, ""), contact, resolved.path, existing=True
        )

    upcoming, already = holdings()
    if already is not None and not request.start.nonexistent:
        return already
    if upcoming >= org.max_upcoming_per_caller:
        log.info("booking refused: the contact holds %d upcoming appointments", upcoming)
        raise TooManyUpcoming(org.max_upcoming_per_caller, request.own_number)
    if request.limit_unverified and request.who.phone and not request.own_number:
        # Counted in this transaction: a booking that fails after this undoes its count.
        used = uow.counters.count(org.id, UNVERIFIED_BOOKINGS, day_start(now, org.zone))
        if used > org.unverified_bookings_per_day:
            log.warning("booking refused: %d bookings today for unverified numbers", used - 1)
            raise UnverifiedBookingsLimit(org.unverified_bookings_per_day)
    starts_at = request.start.start
    ends_at = starts_at + duration
    notes = _notes(choice.asked, request.notes)

    def book_on(
        free: Openings, *, at_version: int | None = None, why: list[str] | None = None
    ) -> Booking | None:
        """Book the first of `free` the exclusion constraint lets in, or None.

        `at_version`: `free` came from the opening hours kept for this version of the
        organization, and nothing is booked unless it still holds; else the busy times were
        read, so a refusal means a booking made meanwhile. `why` gets the reason each
        resource refused the insert (see `_insert`)."""
        for resource_id in free.resources:
            appointment, reason = _insert(
                uow,
                org,
                contact.id,
                resource_id,
                starts_at,
                ends_at,
                choice.name,
                request,
                notes,
                vapi_call_id,
                tool_call_id,
                unconfirmed=resource_id in free.unconfirmed,
                at_version=at_version,
                now=now,
            )
            if appointment is None:
                if why is not None:
                    why.append(reason)
                if at_version is None:
                    BOOKING_CONFLICTS.inc()
                    log.info("slot taken concurrently on resource %s; trying the next", resource_id)
                continue
            log.info(
                "appointment booked: reference=%s resource=%s contact_path=%s",
                appointment.reference,
                resource_id,
                resolved.path,
            )
            uow.add_event(
                appointment_event(
                    AppointmentBooked, org.id, org.timezone, appointment, names[resource_id]
                )
            )
            return _booking(appointment, names[resource_id], contact, resolved.path)
        return None

    # Open by the hours the worker keeps: try the insert straight away (#17). When nothing
    # is inserted (the time is taken, or the hours changed since they were kept),
    # openings_at below reads the diary and books or refuses with alternatives, as it did
    # before the insert came first.
    hopeful = cached_openings(uow, org, resources, request.start, duration, now)
    if hopeful is not None:
        why: list[str] = []
        if (booked := book_on(hopeful, at_version=org.version, why=why)) is not None:
            return booked
        if (already := holdings()[1]) is not None:
            return already
        if why and all(reason == "taken" for reason in why):
            # Open by the hours of the organization's current version, no calendar busy or
            # stale, and every resource that is open then refused for a booking: the diary
            # read below would reach this same refusal (#30: a refusal in a full diary
            # costs one statement less).
            raise refused(uow, org, resources, TAKEN, starts_at, duration, now)
    free = openings_at(uow, org, resources, request.start, duration, now)
    if (booked := book_on(free)) is not None:
        return booked
    if (already := holdings()[1]) is not None:
        return already
    log.info("booking conflict: every free resource was taken concurrently")
    raise refused(uow, org, resources, StartRefused.JUST_TAKEN, starts_at, duration, now)


def _insert(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    contact_id: int,
    resource_id: int,
    starts_at: datetime,
    ends_at: datetime,
    service: str | None,
    request: BookingRequest,
    notes: str | None,
    vapi_call_id: str | None,
    tool_call_id: str | None,
    *,
    unconfirmed: bool,
    at_version: int | None,
    now: datetime,
):
    """(the inserted appointment, None) or (None, why not): "taken" when the resource is
    taken at that time (by a committed booking or a concurrent one, which the insert waits
    for) or, `at_version` given, "stale" when the organization's config_version is no longer
    that and "calendar" when a blocking calendar of the resource is busy then or stale at
    `now`."""
    for _ in range(_REFERENCE_ATTEMPTS):
        reference = new_reference()
        values: dict[str, Any] = dict(
            org_id=org.id,
            contact_id=contact_id,
            resource_id=resource_id,
            reference=reference,
            starts_at=starts_at,
            ends_at=ends_at,
            blocked_until=ends_at + org.rules.buffer,
            service=service,
            notes=notes,
            name=request.who.name,
            email=request.who.email,
            vapi_call_id=vapi_call_id,
            tool_call_id=tool_call_id,
            unconfirmed=unconfirmed,
        )
        if at_version is None:
            appointment = uow.appointments.insert(**values)
        else:
            appointment = uow.appointments.insert_at_version(at_version, now, **values)
        if appointment is not None:
            return appointment, None
        why = uow.appointments.why_not_inserted(
            org.id,
            reference,
            resource_id,
            starts_at,
            ends_at + org.rules.buffer,
            at_version,
            now,
        )
        if why == "taken":
            return None, why  # the exclusion constraint said no
        if why in ("stale", "calendar"):
            # The hours changed since they were kept, or a calendar is busy or stale: the
            # diary read decides (and applies the calendar's policy).
            return None, why
        if why is None:
            # DO NOTHING has no target, so any unique index can refuse the row (a primary key
            # behind its sequence, an index added later). Telling the caller the time was
            # taken would be a lie; this is an error to log and fix.
            raise RuntimeError("an appointment insert was refused by an unexpected constraint")
    raise RuntimeError("could not find a free appointment reference")  # pragma: no cover
