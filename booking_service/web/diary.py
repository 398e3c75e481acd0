"""The diary pages: agenda (day and week), one appointment (history, the assistant's tool calls,
cancel, move, mark), and booking by hand. Every view: read the form → one use case → render."""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta

from flask import abort, flash, g, redirect, render_template, request, url_for

from booking_service.domain import scheduling
from booking_service.domain.errors import (
    AlreadyStarted,
    AppointmentNotMarkable,
    CalendarUnavailable,
    CancelledAppointment,
    DatabaseUnavailable,
    NotFound,
    NothingBookable,
    Refusal,
    StartRefused,
    TooManyUpcoming,
    UnknownResource,
    UnknownService,
)
from booking_service.domain.times import utc_now
from booking_service.use_cases.appointments import mark_outcome
from booking_service.use_cases.call_reports import calls_without_booking
from booking_service.use_cases.diary import (
    DiaryInputError,
    HandBooking,
    agenda,
    appointment_page,
    book_by_hand,
    cancel_by_staff,
    free_starts,
    move_by_staff,
    offered,
)
from booking_service.web.auth import signed_in_only, uow
from booking_service.web.blueprint import bp
from booking_service.web.errors import error_page


@bp.errorhandler(DatabaseUnavailable)
def _database_unavailable(_exc):
    return error_page(503)


@bp.app_template_filter("local")
def local(moment: datetime) -> datetime:
    """An instant in the organization's zone."""
    return moment.astimezone(g.org.zone)


@bp.app_template_filter("day_name")
def day_name(day: date) -> str:
    """'Tuesday 1 December 2026'."""
    return f"{day:%A} {day.day} {day:%B %Y}"


@bp.app_template_filter("when")
def when(moment: datetime | str) -> str:
    """'Tue 1 Dec 2026, 10:30' in the organization's zone (also of an ISO string with its
    offset, as events and the calendar status carry times)."""
    instant = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    at = instant.astimezone(g.org.zone)
    return f"{at:%a} {at.day} {at:%b %Y}, {at:%H:%M}"


def _today() -> date:
    return utc_now().astimezone(g.org.zone).date()


# A diary is looked at within a few years of today; further out, dates overflow week arithmetic.
_REACH = timedelta(days=5 * 366)


def _checked_day(raw: str) -> date | None:
    """A YYYY-MM-DD within reach of today, else None."""
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return None
    today = _today()
    return day if today - _REACH <= day <= today + _REACH else None


def _day_argument(name: str = "date") -> date:
    raw = request.args.get(name, "")
    if not raw:
        return _today()
    day = _checked_day(raw)
    if day is None:
        abort(400)
    return day


def _start_argument(raw: str) -> datetime:
    """A start picked from a list of free times: an ISO instant with its offset."""
    try:
        start = datetime.fromisoformat(raw)
    except ValueError:
        raise DiaryInputError("start", "pick a time from the list") from None
    if start.tzinfo is None:
        raise DiaryInputError("start", "pick a time from the list")
    return start


def refusal_text(refusal: Refusal) -> str:
    """A refusal of the diary's use cases as one sentence for the page."""
    if isinstance(refusal, StartRefused):
        reasons = {
            StartRefused.JUST_TAKEN: "That time was just taken by another booking.",
            scheduling.TAKEN: "That time is already taken.",
            scheduling.PAST: "That time has passed.",
            scheduling.TOO_SOON: "That time is too soon (the booking rules ask for notice).",
            scheduling.BEYOND_HORIZON: "That time is further ahead than bookings are taken.",
            scheduling.CLOSED_DAY: "Nobody works that day.",
            scheduling.OUTSIDE_HOURS: "That time is outside working hours.",
            scheduling.OFF_GRID: "Appointments do not start at that minute.",
            StartRefused.NONEXISTENT: "The clocks change at that time; it does not exist.",
        }
        text = reasons.get(refusal.reason, "That time cannot be booked.")
        if refusal.alternatives:
            nearest = ", ".join(when(slot.start) for slot in refusal.alternatives[:3])
            text += f" Nearest free times: {nearest}."
        if refusal.kept is not None:
            text += f" The appointment stays at {when(refusal.kept)}."
        return text
    if isinstance(refusal, TooManyUpcoming):
        return f"This caller already holds {refusal.limit} upcoming appointments (the limit)."
    if isinstance(refusal, CalendarUnavailable):
        return (
            "The linked calendar could not be read lately, so free times cannot be confirmed "
            "(see Settings, Calendars)."
        )
    if isinstance(refusal, UnknownService):
        return "There is no such service."
    if isinstance(refusal, UnknownResource):
        return "There is no such resource."
    if isinstance(refusal, AlreadyStarted):
        return f"The appointment has already started; it cannot {refusal.action}."
    if isinstance(refusal, CancelledAppointment):
        return "The appointment is cancelled; it cannot be moved."
    if isinstance(refusal, AppointmentNotMarkable):
        return f"It cannot be marked: {refusal.why}."
    return "That cannot be done."


def _free_starts(day: date, **choice) -> tuple[list, str | None]:
    """The free starts of a day, or none and why (no resource, a stale calendar)."""
    try:
        return free_starts(uow(), g.org, day, utc_now(), **choice), None
    except NothingBookable:
        return [], "There is nothing to book yet: add a resource in Settings."
    except Refusal as refusal:
        return [], refusal_text(refusal)


# --- the agenda ---------------------------------------------------------------------------


@bp.get("/")
@signed_in_only
def home():
    return redirect(url_for("web.agenda"))


@bp.get("/agenda", endpoint="agenda")
@signed_in_only
def agenda_page():
    """Day (default) or week view of the diary, one column per resource."""
    day = _day_argument()
    week = request.args.get("view") == "week"
    first = day - timedelta(days=day.weekday()) if week else day
    step = 7 if week else 1
    shown = agenda(uow(), g.org, first, step)
    return render_template(
        "web/agenda.html",
        agenda=shown,
        view="week" if week else "day",
        day=day,
        today=_today(),
        previous=first - timedelta(days=step),
        following=first + timedelta(days=step),
        calls_without_booking=calls_without_booking(uow(), g.org.id),
    )


# --- one appointment ----------------------------------------------------------------------


def _appointment_view(reference: str, *, error: str | None = None, status: int = 200):
    try:
        page = appointment_page(uow(), g.org, reference)
    except NotFound:
        abort(404)
    # The move form opens on the appointment's own day (today when that has passed): that
    # is where a caller asking to move "a bit later" wants to look first.
    own_day = max(page.detail.starts_at.astimezone(g.org.zone).date(), _today())
    asked = request.args.get("move_date") if request.method == "GET" else None
    move_day = _day_argument("move_date") if asked else own_day
    minutes = int((page.detail.ends_at - page.detail.starts_at).total_seconds() // 60)
    starts: list = []
    if page.changeable and page.detail.starts_at > utc_now():
        starts, why_none = _free_starts(move_day, minutes=minutes)
        error = error or why_none
    return (
        render_template(
            "web/appointment.html",
            page=page,
            detail=page.detail,
            move_day=move_day,
            starts=starts,
            started=page.detail.starts_at <= utc_now(),
            error=error,
        ),
        status,
    )


@bp.get("/appointments/<reference>")
@signed_in_only
def appointment(reference: str):
    """Who, when, status, history and the assistant's tool calls; cancel, move and mark."""
    return _appointment_view(reference)


def _change(reference: str, change):
    """Run a staff change of one appointment: (its outcome, None), or (None, the appointment
    page again with why not: 400 for a form value, 409 for a refusal); 404 when not found."""
    try:
        return change(), None
    except NotFound:
        abort(404)
    except DiaryInputError as exc:
        return None, _appointment_view(reference, error=str(exc), status=400)
    except Refusal as exc:
        return None, _appointment_view(reference, error=refusal_text(exc), status=409)


@bp.post("/appointments/<reference>/cancel")
@signed_in_only
def cancel(reference: str):
    outcome, refused = _change(
        reference,
        lambda: cancel_by_staff(uow(), g.org, reference, request.form.get("reason"), utc_now()),
    )
    if refused is not None:
        return refused
    if outcome.already_cancelled:
        flash("It was already cancelled.")
    else:
        flash(f"Cancelled {outcome.appointment.reference}.")
    return redirect(url_for("web.appointment", reference=outcome.appointment.reference))


@bp.post("/appointments/<reference>/move")
@signed_in_only
def move(reference: str):
    moved, refused = _change(
        reference,
        lambda: move_by_staff(
            uow(), g.org, reference, _start_argument(request.form.get("start", "")), utc_now()
        ),
    )
    if refused is not None:
        return refused
    flash(f"Moved to {when(moved.appointment.starts_at)}.")
    return redirect(url_for("web.appointment", reference=moved.appointment.reference))


@bp.post("/appointments/<reference>/mark")
@signed_in_only
def mark(reference: str):
    outcome = request.form.get("outcome")
    if outcome not in ("completed", "no_show"):
        abort(400)
    marked, refused = _change(
        reference, lambda: mark_outcome(uow(), g.org, reference, outcome, utc_now())
    )
    if refused is not None:
        return refused
    flash("Marked as completed." if outcome == "completed" else "Marked as a no-show.")
    return redirect(url_for("web.appointment", reference=marked.reference))


# --- booking by hand ----------------------------------------------------------------------


def _book_form(*, error: str | None = None, field: str | None = None, status: int = 200):
    day = _day_argument() if request.method == "GET" else _form_day()
    offer = offered(uow(), g.org)
    service = (request.values.get("service") or "").strip() or None
    if service not in {name for name, _ in offer.services}:
        service = None
    resource = (request.values.get("resource") or "").strip() or None
    if resource not in offer.resources:
        resource = None
    starts, why_none = _free_starts(day, service=service, resource=resource)
    error = error or why_none
    return (
        render_template(
            "web/book.html",
            day=day,
            starts=starts,
            services=offer.services,
            service=service,
            resources=offer.resources,
            resource=resource,
            form=request.form,
            form_key=request.form.get("form_key") or secrets.token_hex(16),
            error=error,
            error_field=field,
        ),
        status,
    )


def _form_day() -> date:
    return _checked_day(request.form.get("date", "")) or _today()


@bp.get("/book")
@signed_in_only
def book():
    """Pick a free time of a day, enter the caller's name and phone or email."""
    return _book_form()


@bp.post("/book")
@signed_in_only
def book_submit():
    form = request.form
    try:
        entry = HandBooking(
            name=form.get("name", ""),
            phone=form.get("phone", ""),
            email=form.get("email", ""),
            start=_start_argument(form.get("start", "")),
            service=(form.get("service") or "").strip() or None,
            resource=(form.get("resource") or "").strip() or None,
            notes=form.get("notes", ""),
            form_key=form.get("form_key", ""),
        )
        booking = book_by_hand(uow(), g.org, entry, utc_now())
    except DiaryInputError as exc:
        return _book_form(error=str(exc), field=exc.field, status=400)
    except Refusal as exc:
        return _book_form(error=refusal_text(exc), status=409)
    if booking.already_booked:
        flash(f"This booking was already made: {booking.reference}.")
    else:
        flash(f"Booked {booking.reference} for {when(booking.starts_at)} with {booking.resource}.")
    return redirect(url_for("web.appointment", reference=booking.reference))
