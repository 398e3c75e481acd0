"""The diary as staff work it on the owner's web page: the agenda, one appointment with its
history, free times, and the staff's own bookings, cancellations and moves.

The changes run the same use cases as the voice path (book_appointment, cancel_appointment,
reschedule_appointment), so the same constraints, caps, events and messages apply; the unit of
work's source ("web") is what the events record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from booking_service.domain.errors import InputError, NotFound
from booking_service.domain.normalize import (
    clean_name,
    clean_text,
    normalize_email,
    normalize_phone,
)
from booking_service.domain.times import ParsedStart
from booking_service.persistence.repositories.calendars import ListedAppointment
from booking_service.persistence.repositories.call_reports import CallRow
from booking_service.persistence.repositories.diary import (
    AppointmentDetail,
    HistoryEntry,
    ToolCallEntry,
)
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases.appointments import (
    Cancellation,
    Rescheduling,
    StaffAccess,
    cancel_appointment,
    normalize_reference,
    reschedule_appointment,
)
from booking_service.use_cases.availability import check_availability
from booking_service.use_cases.booking import Booking, BookingRequest, book_appointment
from booking_service.use_cases.catalogue import load_catalogue
from booking_service.use_cases.contacts import CallerIdentity
from booking_service.use_cases.orgs import OrgInfo

MAX_AGENDA_DAYS = 7
MAX_REASON_LENGTH = 500
MAX_NOTES_LENGTH = 1000
# Every free start of a day: with 5-minute slots and a dozen resources that is a few hundred.
MAX_FREE_STARTS = 2000
# What a book-by-hand form's nonce looks like (hex from secrets.token_hex(16)).
_FORM_KEY = re.compile(r"^[0-9a-f]{32}$")


class DiaryInputError(InputError):
    """A form value the diary cannot use; `field` names the form field."""


@dataclass(frozen=True)
class AgendaDay:
    """One local day: appointments and external busy times per resource id."""

    day: date
    appointments: dict[int, list[ListedAppointment]]
    busy: dict[int, list[tuple[datetime, datetime]]]


@dataclass(frozen=True)
class Agenda:
    """Consecutive days of the diary, one column per resource."""

    days: list[AgendaDay]
    resources: list[tuple[int, str]]


def agenda(uow: AbstractUnitOfWork, org: OrgInfo, first: date, days: int) -> Agenda:
    """The organization's appointments (cancelled ones included) and external busy times on
    `days` local days from `first`."""
    if not 1 <= days <= MAX_AGENDA_DAYS:
        raise DiaryInputError("days", f"an agenda shows 1 to {MAX_AGENDA_DAYS} days")
    zone = org.zone
    # Local midnights: day n runs from bounds[n] to bounds[n + 1] (23 or 25 hours on DST days).
    bounds = [
        datetime.combine(first + timedelta(days=n), datetime.min.time(), zone)
        for n in range(days + 1)
    ]
    start, end = bounds[0], bounds[-1]
    with uow:
        resources = [(r.id, r.name) for r in uow.schedule.resources(org.id)]
        rows = uow.calendars.appointments(org.id, start, end)
        linked = any(link.block for link in uow.calendars.links(org.id))
        busy_rows = (
            uow.calendars.busy(org.id, [rid for rid, _ in resources], start, end) if linked else []
        )
    by_day = [
        AgendaDay(first + timedelta(days=n), {rid: [] for rid, _ in resources}, {})
        for n in range(days)
    ]
    for row in rows:
        index = (row.starts_at.astimezone(zone).date() - first).days
        by_day[index].appointments.setdefault(row.resource_id, []).append(row)
    for resource_id, busy_start, busy_end in busy_rows:
        for agenda_day, day_start, day_end in zip(by_day, bounds, bounds[1:], strict=False):
            if busy_start < day_end and busy_end > day_start:
                agenda_day.busy.setdefault(resource_id, []).append(
                    (max(busy_start, day_start), min(busy_end, day_end))
                )
    return Agenda(by_day, resources)


@dataclass(frozen=True)
class AppointmentPage:
    """One appointment, its changes, and what the assistant did on the call that made it."""

    detail: AppointmentDetail
    history: list[HistoryEntry]
    tool_calls: list[ToolCallEntry]
    # What the voice platforms reported of the calls that booked, moved or cancelled it.
    calls: list[CallRow] = field(default_factory=list)

    @property
    def changeable(self) -> bool:
        return self.detail.status == "booked"


def appointment_page(uow: AbstractUnitOfWork, org: OrgInfo, reference: str) -> AppointmentPage:
    """The appointment with this reference in the organization; NotFound otherwise."""
    key = normalize_reference(reference)
    with uow:
        detail = uow.diary.detail(org.id, key) if key else None
        if detail is None:
            raise NotFound("appointment", reference)
        history = uow.diary.history(org.id, detail.reference, detail.created_at)
        calls = (
            uow.diary.tool_calls(org.id, detail.vapi_call_id)
            if detail.vapi_call_id and not detail.vapi_call_id.startswith(WEB_FORM_PREFIX)
            else []
        )
        reports = uow.call_reports.touching(org.id, detail.reference)
    return AppointmentPage(detail, history, calls, reports)


def cancel_by_staff(
    uow: AbstractUnitOfWork, org: OrgInfo, reference: str, reason: str | None, now: datetime
) -> Cancellation:
    """Cancel an appointment of the organization that has not started; commits."""
    cleaned = clean_text(reason)
    if cleaned is not None and len(cleaned) > MAX_REASON_LENGTH:
        raise DiaryInputError("reason", f"the reason is longer than {MAX_REASON_LENGTH} characters")
    with uow:
        outcome = cancel_appointment(
            uow, org, StaffAccess(reference), start=None, reason=cleaned, now=now
        )
        uow.commit()
    return outcome


def move_by_staff(
    uow: AbstractUnitOfWork, org: OrgInfo, reference: str, new_start: datetime, now: datetime
) -> Rescheduling:
    """Move an appointment of the organization to `new_start` (same checks as a booking);
    commits. StartRefused (with alternatives) when the time is not free."""
    with uow:
        moved = reschedule_appointment(
            uow, org, StaffAccess(reference), start=None, new_start=ParsedStart(new_start), now=now
        )
        uow.commit()
    return moved


@dataclass(frozen=True)
class Offer:
    """What can be booked: resource names (by id) and (service, minutes) by name."""

    resources: list[str]
    services: list[tuple[str, int]]


def offered(uow: AbstractUnitOfWork, org: OrgInfo) -> Offer:
    """The organization's resources and services (one statement)."""
    with uow:
        catalogue = load_catalogue(uow, org)
    return Offer(
        [r.name for r in catalogue.resources],
        [(s.name, s.duration_minutes) for s in catalogue.services],
    )


@dataclass(frozen=True)
class FreeStart:
    """A free start and the resources free then."""

    start: datetime
    resources: tuple[str, ...]


def free_starts(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    day: date,
    now: datetime,
    *,
    service: str | None = None,
    minutes: int | None = None,
    resource: str | None = None,
) -> list[FreeStart]:
    """Every free start on one local day for the service (or length), on any resource or the
    one named, soonest first."""
    found = check_availability(
        uow,
        org,
        first=day,
        last=day,
        window_start=None,
        window_end=None,
        service=service,
        minutes=minutes,
        resource=resource,
        now=now,
        enough=MAX_FREE_STARTS,
        next_day=False,
    )
    starts: dict[datetime, list[str]] = {}
    for slot in found.slots:
        starts.setdefault(slot.start, []).append(slot.resource_name)
    return [FreeStart(start, tuple(names)) for start, names in sorted(starts.items())]


# A form's nonce stands in for the VAPI call id of a voice booking: the same form sent twice
# (a double click, a reload) gives back the booking it made instead of making another.
WEB_FORM_PREFIX = "web-form:"


@dataclass(frozen=True)
class HandBooking:
    """What a receptionist typed into the book-by-hand form."""

    name: str
    phone: str
    email: str
    start: datetime
    service: str | None
    resource: str | None
    notes: str
    form_key: str


def book_by_hand(
    uow: AbstractUnitOfWork, org: OrgInfo, entry: HandBooking, now: datetime
) -> Booking:
    """Book as the voice path books (same rules, caps, constraint, events and messages);
    commits. What the receptionist types is what a caller said: a claim, so it gives a new or
    nameless contact a name but changes no stored name or email (own_number is False)."""
    name = clean_name(entry.name)
    if name is None:
        raise DiaryInputError("name", "enter the caller's name")
    phone = normalize_phone(entry.phone, org.phone_region) if entry.phone.strip() else None
    if entry.phone.strip() and phone is None:
        raise DiaryInputError("phone", "this is not a valid phone number")
    email = normalize_email(entry.email) if entry.email.strip() else None
    if entry.email.strip() and email is None:
        raise DiaryInputError("email", "this is not a valid email address")
    if phone is None and email is None:
        raise DiaryInputError("phone", "enter a phone number or an email address")
    notes = clean_text(entry.notes)
    if notes is not None and len(notes) > MAX_NOTES_LENGTH:
        raise DiaryInputError("notes", f"notes are longer than {MAX_NOTES_LENGTH} characters")
    if not _FORM_KEY.match(entry.form_key):
        raise DiaryInputError("form_key", "the form is damaged; reload the page")
    request = BookingRequest(
        who=CallerIdentity(phone=phone, email=email, name=name),
        start=ParsedStart(entry.start),
        duration_minutes=None,
        service=entry.service,
        notes=notes,
        resource=entry.resource,
        own_number=False,
    )
    with uow:
        booking = book_appointment(
            uow,
            org,
            request,
            now=now,
            vapi_call_id=WEB_FORM_PREFIX + entry.form_key,
            tool_call_id=None,
        )
        uow.commit()
    return booking
