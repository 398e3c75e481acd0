"""The caller's page behind the manage link of a confirmation or reminder (/b/<token>, #28):
the appointment's time, place and reference; cancel it, or move it to another free time.
Mobile first, the owner's page's look, no script; every change a POST with a CSRF token (the
session cookie of these pages is scoped to /b). A dead or false link is one "no longer works"
page, whatever the reason. nginx limits requests per source address (deploy/nginx.conf)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError

from booking_service.domain.errors import DatabaseUnavailable, NotFound, Refusal
from booking_service.domain.times import utc_now
from booking_service.runtime.extensions import runtime
from booking_service.use_cases.manage_links import (
    Linked,
    cancel_by_link,
    free_starts_for,
    link_keys,
    move_by_link,
    open_link,
)
from booking_service.web.blueprint import CONTENT_SECURITY_POLICY, MANAGE_PREFIX, csrf
from booking_service.web.diary import refusal_text
from booking_service.web.errors import error_page

manage_bp = Blueprint("manage", __name__, url_prefix=MANAGE_PREFIX)

# How far ahead a caller may look for another time (the booking horizon refuses beyond it).
_REACH = timedelta(days=2 * 366)


def _uow():
    """Changes made here are recorded as the caller's own, through the link."""
    return runtime().uow(source="link")


def _keys() -> tuple[str, ...]:
    return link_keys(runtime().settings)


@manage_bp.before_request
def _guard() -> None:
    if request.method == "POST":
        csrf.protect()


@manage_bp.after_request
def _headers(response):
    """The owner's pages' headers, and no Referer at all: the URL is the caller's key."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@manage_bp.errorhandler(CSRFError)
def _csrf(_exc):
    return error_page(400)


@manage_bp.errorhandler(DatabaseUnavailable)
def _unavailable(_exc):
    return error_page(503)


def _gone():
    g.org = None
    return render_template("web/manage_gone.html"), 404


def _day(linked: Linked) -> date:
    """The day whose free times are shown: ?date=, else the appointment's own day."""
    today = utc_now().astimezone(linked.org.zone).date()
    own = max(linked.appointment.starts_at.astimezone(linked.org.zone).date(), today)
    raw = request.args.get("date", "")
    if not raw:
        return own
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return own
    return day if today <= day <= today + _REACH else own


def _page(token: str, *, refusal: Refusal | None = None, status: int = 200):
    now = utc_now()
    try:
        linked = open_link(_uow(), _keys(), token, now)
    except NotFound:
        return _gone()
    g.org = linked.org  # (times are worded in its zone)
    error = refusal_text(refusal) if refusal is not None else None
    day = _day(linked)
    try:
        starts = free_starts_for(_uow(), linked, day, now)
    except Refusal as none_free:
        starts, error = [], error or refusal_text(none_free)
    started = linked.appointment.starts_at <= now
    return (
        render_template(
            "web/manage.html",
            token=token,
            linked=linked,
            appointment=linked.appointment,
            day=day,
            today=now.astimezone(linked.org.zone).date(),
            starts=starts,
            started=started,
            error=error,
        ),
        status,
    )


@manage_bp.get("/<token>")
def page(token: str):
    """The appointment, cancel, and free times of a day to move to."""
    return _page(token)


@manage_bp.post("/<token>/cancel")
def cancel(token: str):
    try:
        outcome = cancel_by_link(_uow(), _keys(), token, utc_now())
    except NotFound:
        return _gone()
    except Refusal as refusal:
        return _page(token, refusal=refusal, status=409)
    g.org = None
    return render_template("web/manage_cancelled.html", appointment=outcome.appointment)


@manage_bp.post("/<token>/move")
def move(token: str):
    raw = request.form.get("start", "")
    try:
        start = datetime.fromisoformat(raw)
    except ValueError:
        abort(400)
    if start.tzinfo is None:
        abort(400)
    try:
        move_by_link(_uow(), _keys(), token, start, utc_now())
    except NotFound:
        return _gone()
    except Refusal as refusal:
        return _page(token, refusal=refusal, status=409)
    flash("Your appointment has moved; you will get a message with the new time.")
    return redirect(url_for("manage.page", token=token))
