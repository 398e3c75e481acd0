"""/api/v1/bookings: book, list, read one, cancel and move (scopes bookings:read and
bookings:write). Changes run the voice tools' steps (book_appointment, cancel_appointment,
reschedule_appointment) inside the Idempotency-Key's transaction, so events, messages,
calendar pushes and webhooks follow as they do for a phone booking. A key is the business
acting: staff authority, any booking of its organization by reference."""

from __future__ import annotations

import re
from datetime import datetime

from booking_service.api.v1.blueprint import (
    Rejected,
    bp,
    caller,
    load_body,
    load_query,
    requires,
    uow,
    within_reach,
)
from booking_service.api.v1.idempotency import answer_once
from booking_service.api.v1.problems import (
    local_iso,
    refusal_problem,
    respond,
    validation_problem,
)
from booking_service.api.v1.schemas import (
    REFERENCE_PATTERN,
    BookingIn,
    BookingsQuery,
    CancelIn,
    RescheduleIn,
)
from booking_service.domain.errors import NotFound
from booking_service.domain.normalize import (
    clean_name,
    clean_text,
    normalize_email,
    normalize_phone,
)
from booking_service.domain.times import ParsedStart, utc_now
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases.api_requests import ApiAnswer
from booking_service.use_cases.appointments import (
    StaffAccess,
    cancel_appointment,
    reschedule_appointment,
)
from booking_service.use_cases.booking import BookingRequest, book_appointment
from booking_service.use_cases.contacts import CallerIdentity
from booking_service.use_cases.diary import DiaryInputError, agenda, appointment_page
from booking_service.use_cases.orgs import OrgInfo

_BOOKING = BookingIn()
_RESCHEDULE = RescheduleIn()
_CANCEL = CancelIn()
_LIST = BookingsQuery()


def _booking(
    org: OrgInfo,
    reference: str,
    starts_at: datetime,
    ends_at: datetime,
    status: str,
    resource: str,
    service: str | None,
    name: str | None,
) -> dict:
    return {
        "reference": reference,
        "start": local_iso(starts_at, org),
        "end": local_iso(ends_at, org),
        "status": status,
        "resource": resource,
        "service": service,
        "name": name,
    }


def _view(org: OrgInfo, view) -> dict:
    """An AppointmentView (cancel, move) as the API shows a booking."""
    return _booking(
        org,
        view.reference,
        view.starts_at,
        view.ends_at,
        view.status,
        view.resource,
        view.service,
        view.name,
    )


def _who(org: OrgInfo, args: dict) -> CallerIdentity:
    """The caller the body names, normalized; a 422 problem for what cannot be used."""
    errors: dict[str, list[str]] = {}
    name = clean_name(args["name"])
    if name is None:
        errors["name"] = ["Give the caller's name."]
    phone = normalize_phone(args["phone"], org.phone_region) if args.get("phone") else None
    if args.get("phone") and phone is None:
        errors["phone"] = ["Not a valid phone number."]
    email = normalize_email(args["email"]) if args.get("email") else None
    if args.get("email") and email is None:
        errors["email"] = ["Not a valid email address."]
    if errors:
        raise Rejected(validation_problem(errors))
    return CallerIdentity(phone=phone, email=email, name=name)


@bp.post("/bookings")
@requires("bookings:write")
def book():
    """Book; 201 with the booking, 409 with alternatives when the time is not free."""
    org = caller().org
    args, body = load_body(_BOOKING)
    within_reach(args["start"], "start")
    request_ = BookingRequest(
        who=_who(org, args),
        start=ParsedStart(args["start"]),
        duration_minutes=None,
        service=args.get("service"),
        notes=clean_text(args.get("notes")),
        resource=args.get("resource"),
        # The business acting, like staff booking by hand: what the body says of the caller
        # is a claim that changes no stored name or email, and no daily cap of strangers.
        own_number=False,
        limit_unverified=False,
    )
    now = utc_now()

    def perform(uow: AbstractUnitOfWork) -> ApiAnswer:
        made = book_appointment(uow, org, request_, now=now, vapi_call_id=None, tool_call_id=None)
        return ApiAnswer(
            201,
            _booking(
                org,
                made.reference,
                made.starts_at,
                made.ends_at,
                "booked",
                made.resource,
                made.service,
                made.name,
            ),
        )

    return answer_once(body, perform)


def _reference(reference: str) -> str:
    """The path's reference; a 404 problem for one no booking can have."""
    if not re.match(REFERENCE_PATTERN, reference):
        raise Rejected(respond(404, refusal_problem(NotFound("booking", reference), caller().org)))
    return reference


@bp.get("/bookings")
@requires("bookings:read")
def list_bookings():
    """The bookings (cancelled ones too) of `days` local days from `date`, soonest first."""
    org = caller().org
    args = load_query(_LIST)
    first = args.get("date") or utc_now().astimezone(org.zone).date()
    within_reach(first, "date")
    try:
        shown = agenda(uow(), org, first, args.get("days", 1))
    except DiaryInputError as exc:
        return respond(422, refusal_problem(exc, org))
    rows = [row for day in shown.days for listed in day.appointments.values() for row in listed]
    rows.sort(key=lambda row: (row.starts_at, row.reference))
    return respond(
        200,
        {
            "bookings": [
                _booking(
                    org,
                    row.reference,
                    row.starts_at,
                    row.ends_at,
                    row.status,
                    row.resource,
                    row.service,
                    row.name,
                )
                for row in rows
            ]
        },
    )


@bp.get("/bookings/<reference>")
@requires("bookings:read")
def get_booking(reference: str):
    """One booking of the organization by reference."""
    org = caller().org
    try:
        page = appointment_page(uow(), org, _reference(reference))
    except NotFound:
        return respond(404, refusal_problem(NotFound("booking", reference), org))
    d = page.detail
    return respond(
        200,
        _booking(org, d.reference, d.starts_at, d.ends_at, d.status, d.resource, d.service, d.name),
    )


@bp.post("/bookings/<reference>/cancel")
@requires("bookings:write")
def cancel(reference: str):
    """Cancel (a booking cancelled before answers as it is); 409 once it has started."""
    org = caller().org
    args, body = load_body(_CANCEL, optional=True)
    key = _reference(reference)
    now = utc_now()

    def perform(uow: AbstractUnitOfWork) -> ApiAnswer:
        outcome = cancel_appointment(
            uow, org, StaffAccess(key), start=None, reason=clean_text(args.get("reason")), now=now
        )
        return ApiAnswer(200, _view(org, outcome.appointment))

    return answer_once(body, perform)


@bp.post("/bookings/<reference>/reschedule")
@requires("bookings:write")
def reschedule(reference: str):
    """Move to `start` (same reference); 409 with alternatives when it is not free, and the
    booking stays where it was."""
    org = caller().org
    args, body = load_body(_RESCHEDULE)
    within_reach(args["start"], "start")
    key = _reference(reference)
    now = utc_now()
    new_start = ParsedStart(args["start"])

    def perform(uow: AbstractUnitOfWork) -> ApiAnswer:
        moved = reschedule_appointment(
            uow, org, StaffAccess(key), start=None, new_start=new_start, now=now
        )
        return ApiAnswer(200, _view(org, moved.appointment))

    return answer_once(body, perform)
