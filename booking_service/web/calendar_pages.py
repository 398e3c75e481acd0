"""Settings → Calendars: "Connect Google Calendar" / "Connect Microsoft 365" for a resource,
and the page the owner comes back to after consenting.

The provider sends the owner to /oauth/<provider>/callback (oauth_callbacks.py, outside /app
where the session cookie lives), which forwards the same query here: a connection started on
this page is completed only by the owner who started it; one started from the CLI by whoever
opened its URL.
"""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for

from booking_service.adapters.registry import calendar_providers, oauth_clients
from booking_service.domain.errors import InputError, NotFound
from booking_service.runtime.extensions import runtime
from booking_service.use_cases.calendar_connect import (
    LABELS,
    OAUTH_PROVIDERS,
    ConnectRefused,
    finish_connect,
    start_connect,
)
from booking_service.web.auth import owners_only, uow
from booking_service.web.blueprint import bp
from booking_service.web.settings_pages import _settings_page
from booking_service.web.wording import input_error_text

MAX_ID = 2**63 - 1


@bp.post("/settings/calendars/connect")
@owners_only
def settings_connect_calendar():
    """Off to the provider's consent page for the chosen resource (and calendar)."""
    settings = runtime().settings
    try:
        resource_id = int(request.form.get("resource_id", ""))
    except ValueError:
        return _settings_page(error="Pick the resource whose calendar this is.", status=400)
    if not 0 < resource_id <= MAX_ID:
        abort(404)
    try:
        url = start_connect(
            uow(),
            oauth_clients(settings),
            settings.base_url,
            resource_id,
            request.form.get("provider", ""),
            calendar_id=request.form.get("calendar_id") or None,
            when_stale=request.form.get("when_stale", "refuse"),
            org_id=g.org.id,
            user_id=g.account.id,
        )
    except NotFound:
        abort(404)
    except InputError as exc:
        return _settings_page(error=input_error_text(exc), error_field=exc.field, status=400)
    return redirect(url)


@bp.get("/calendars/oauth/<provider>/done")
def calendar_connected(provider: str):
    """Where the provider's callback lands (forwarded): link, or say plainly why not."""
    if provider not in OAUTH_PROVIDERS:
        abort(404)
    settings = runtime().settings
    account = g.account
    try:
        link = finish_connect(
            uow(),
            oauth_clients(settings),
            calendar_providers(settings),
            settings.base_url,
            provider,
            state=request.args.get("state", ""),
            code=request.args.get("code"),
            error=request.args.get("error"),
            timeout_s=settings.calendar_timeout_s,
            user_id=account.id if account is not None else None,
        )
    except ConnectRefused as exc:
        page = render_template(
            "web/error.html", status=400, title="The calendar was not connected", text=str(exc)
        )
        return page, 400
    label = LABELS[provider]
    who = f" ({link.account})" if link.account else ""
    if account is not None and account.org_id == link.org_id:
        flash(f"{label}{who} is connected.")
        return redirect(url_for("web.settings") + "#calendars")
    page = render_template(
        "web/error.html",
        status=200,
        title=f"{label} connected",
        text=f"{label}{who} is now linked. You can close this page.",
    )
    return page, 200
