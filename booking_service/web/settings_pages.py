"""Settings, for owners only: resources and their hours, closed days, services, booking rules,
reminders, the VAPI set-up, webhook endpoints with their delivery log, calendar links, users,
and the REST API's keys.

A new secret or password is shown once, on the page that answers the POST that made it, and
never again (the page is not cached: see security_headers).
"""

from __future__ import annotations

from datetime import date
from urllib.parse import urlsplit

from flask import abort, flash, g, redirect, render_template, request, url_for

from booking_service.adapters.registry import oauth_clients
from booking_service.domain.errors import InputError, NotFound
from booking_service.domain.times import utc_now
from booking_service.runtime.extensions import runtime
from booking_service.use_cases.accounts import (
    ROLES,
    AccountInputError,
    add_user,
    list_users,
    remove_user,
    reset_password,
)
from booking_service.use_cases.api_keys import SCOPES, add_key, list_keys, revoke_key
from booking_service.use_cases.calendar_connect import LABELS
from booking_service.use_cases.calendar_connect import offered as offered_providers
from booking_service.use_cases.calendar_links import calendar_status
from booking_service.use_cases.diary import offered
from booking_service.use_cases.messaging import reminder_values, show
from booking_service.use_cases.orgs import OrgInputError, rotate_secret, update_rules
from booking_service.use_cases.resources import (
    DAYS,
    ScheduleInputError,
    add_resource,
    add_service,
    clear_day,
    exceptions_ahead,
    list_resources,
    set_day,
    set_weekly_hours,
)
from booking_service.use_cases.webhooks import (
    ReplayLimitReached,
    WebhookInputError,
    deliveries,
    list_endpoints,
    replay,
)
from booking_service.voice.vapi.definitions import tool_definitions
from booking_service.web.auth import owners_only, uow
from booking_service.web.blueprint import bp
from booking_service.web.wording import input_error_text, invalid_marker

# Ids are bigint: a larger one in a URL or form is no id at all (404), not a database error.
MAX_ID = 2**63 - 1


def _tools_url() -> str:
    return runtime().settings.public_url.rstrip("/") + "/api/vapi/tools"


def _settings_page(
    *,
    error: str | None = None,
    status: int = 200,
    shown_once: dict | None = None,
    error_field: str | None = None,
):
    org = g.org
    today = utc_now().astimezone(org.zone).date()
    clients = oauth_clients(runtime().settings)
    connectable = offered_providers(clients)
    g.form_targets = sorted({_origin(clients[name].auth_url) for name in connectable})
    resources = list_resources(uow(), org.id)
    endpoints = list_endpoints(uow(), org.id)
    return (
        render_template(
            "web/settings.html",
            resources=resources,
            names={r.id: r.name for r in resources},
            days=DAYS,
            exceptions=exceptions_ahead(uow(), org.id, today),
            services=offered(uow(), org).services,
            messaging=show(uow(), org.id),
            tools=tool_definitions(_tools_url()),
            tools_url=_tools_url(),
            endpoints=endpoints,
            attempts={e.id: deliveries(uow(), e.id, limit=20, org_id=org.id) for e in endpoints},
            calendars=calendar_status(uow(), org.id),
            connectable=connectable,
            provider_labels=LABELS,
            users=list_users(uow(), org.id),
            roles=ROLES,
            api_keys=list_keys(uow(), org.id),
            scopes=SCOPES,
            rules=org.rules,
            max_upcoming=org.max_upcoming_per_caller,
            error=error,
            invalid=invalid_marker(error_field),
            shown_once=shown_once,
        ),
        status,
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _done(message: str, section: str):
    flash(message)
    return redirect(url_for("web.settings") + f"#{section}")


def _number(name: str) -> int | None:
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise OrgInputError(name, "must be a whole number") from None


@bp.get("/settings")
@owners_only
def settings():
    """Everything an owner can change, section by section."""
    return _settings_page()


def _changed(action, message: str, section: str):
    """Run a change; an input error re-renders the page with it (400), an id of another
    organization is 404."""
    try:
        action()
    except NotFound:
        abort(404)
    except InputError as exc:
        return _settings_page(error=input_error_text(exc), error_field=exc.field, status=400)
    return _done(message, section)


@bp.post("/settings/rules")
@owners_only
def settings_rules():
    return _changed(
        lambda: update_rules(
            uow(),
            g.org.id,
            slot_minutes=_number("slot_minutes"),
            min_notice_minutes=_number("min_notice_minutes"),
            horizon_days=_number("horizon_days"),
            buffer_minutes=_number("buffer_minutes"),
            max_upcoming_per_caller=_number("max_upcoming_per_caller"),
        ),
        "Booking rules saved.",
        "rules",
    )


@bp.post("/settings/reminders")
@owners_only
def settings_reminders():
    return _changed(
        lambda: update_rules(
            uow(),
            g.org.id,
            messaging=reminder_values(
                request.form.get("reminders", ""), request.form.get("quiet_hours", "")
            ),
        ),
        "Reminders saved.",
        "reminders",
    )


@bp.post("/settings/resources")
@owners_only
def settings_add_resource():
    return _changed(
        lambda: add_resource(
            uow(), g.org.id, request.form.get("name", ""), [request.form.get("hours", "")]
        ),
        "Resource added.",
        "resources",
    )


@bp.post(f"/settings/resources/<int(max={MAX_ID}):resource_id>/hours")
@owners_only
def settings_hours(resource_id: int):
    by_day = {n: request.form.get(f"day{n}", "") for n in range(7)}
    return _changed(
        lambda: set_weekly_hours(uow(), g.org.id, resource_id, by_day),
        "Weekly hours saved.",
        f"resource-{resource_id}",
    )


@bp.post(f"/settings/resources/<int(max={MAX_ID}):resource_id>/day")
@owners_only
def settings_day(resource_id: int):
    def change():
        try:
            day = date.fromisoformat(request.form.get("date", ""))
        except ValueError:
            raise ScheduleInputError("pick a date") from None
        set_day(uow(), resource_id, day, request.form.get("hours") or None, org_id=g.org.id)

    return _changed(change, "Day saved.", f"resource-{resource_id}")


@bp.post(f"/settings/resources/<int(max={MAX_ID}):resource_id>/day/clear")
@owners_only
def settings_clear_day(resource_id: int):
    try:
        day = date.fromisoformat(request.form.get("date", ""))
    except ValueError:
        abort(400)
    return _changed(
        lambda: clear_day(uow(), g.org.id, resource_id, day),
        "The usual hours apply again that day.",
        f"resource-{resource_id}",
    )


@bp.post("/settings/services")
@owners_only
def settings_service():
    def change():
        minutes = _number("minutes")
        if minutes is None:
            raise ScheduleInputError("a service needs its length in minutes")
        add_service(uow(), g.org.id, request.form.get("name", ""), minutes)

    return _changed(change, "Service saved.", "services")


@bp.post("/settings/vapi/rotate")
@owners_only
def settings_rotate_secret():
    """A new webhook secret, shown once; the old one stops working after the grace given."""
    try:
        grace = int(request.form.get("grace_minutes", "0"))
    except ValueError:
        grace = -1
    if not 0 <= grace <= 1440:
        return _settings_page(error="The grace period is 0 to 1440 minutes.", status=400)
    secret = rotate_secret(uow(), g.org.id, grace)
    return _settings_page(shown_once={"what": "The new VAPI webhook secret", "value": secret})


@bp.post("/settings/webhooks/replay")
@owners_only
def settings_replay():
    event_id = request.form.get("event_id", "")
    try:
        endpoint_id = int(request.form.get("endpoint_id", ""))
    except ValueError:
        abort(404)
    if not 0 < endpoint_id <= MAX_ID:
        abort(404)
    try:
        done = replay(uow(), event_id, endpoint_id, org_id=g.org.id)
    except NotFound:
        abort(404)
    except ReplayLimitReached as exc:
        return _settings_page(error=input_error_text(exc), status=429)
    except WebhookInputError as exc:
        return _settings_page(error=input_error_text(exc), error_field=exc.field, status=400)
    return _done(
        "The event will be delivered again."
        if done.queued
        else "The event is already queued for delivery; nothing changed.",
        f"endpoint-{endpoint_id}",
    )


@bp.post("/settings/users")
@owners_only
def settings_add_user():
    try:
        # Counted and capped per day: "taken" from the page is how one organization could
        # learn which addresses sign in to another (see TAKEN_ANSWERS_PER_DAY).
        made = add_user(
            uow(),
            g.org.id,
            request.form.get("email", ""),
            request.form.get("role", "staff"),
            limit_taken=True,
        )
    except AccountInputError as exc:
        return _settings_page(error=input_error_text(exc), error_field=exc.field, status=400)
    return _settings_page(
        shown_once={"what": f"The password of {made.account.email}", "value": made.password}
    )


@bp.post(f"/settings/users/<int(max={MAX_ID}):user_id>/reset")
@owners_only
def settings_reset_user(user_id: int):
    try:
        made = reset_password(uow(), user_id, org_id=g.org.id)
    except NotFound:
        abort(404)
    return _settings_page(
        shown_once={"what": f"The new password of {made.account.email}", "value": made.password}
    )


@bp.post(f"/settings/users/<int(max={MAX_ID}):user_id>/remove")
@owners_only
def settings_remove_user(user_id: int):
    if user_id == g.account.id:
        return _settings_page(error="You cannot remove yourself.", status=400)
    return _changed(lambda: remove_user(uow(), g.org.id, user_id), "User removed.", "users")


@bp.post("/settings/api-keys")
@owners_only
def settings_add_api_key():
    """A new REST API key with the scopes ticked, shown once."""
    try:
        made = add_key(uow(), g.org.id, request.form.getlist("scope"), request.form.get("name", ""))
    except InputError as exc:
        return _settings_page(error=input_error_text(exc), error_field=exc.field, status=400)
    what = f"The API key {made.info.name or made.info.id} ({', '.join(made.info.scopes)})"
    return _settings_page(shown_once={"what": what, "value": made.key})


@bp.post(f"/settings/api-keys/<int(max={MAX_ID}):key_id>/revoke")
@owners_only
def settings_revoke_api_key(key_id: int):
    return _changed(
        lambda: revoke_key(uow(), key_id, org_id=g.org.id), "API key revoked.", "api-keys"
    )
