"""/oauth/google/callback and /oauth/microsoft/callback: the redirect URIs registered with the
providers (on PUBLIC_BASE_URL). They forward the query to the page under /app that completes
the connection (calendar_pages.py), where the signed-in owner's session cookie is sent."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, abort, redirect, request, url_for

from booking_service.use_cases.calendar_connect import OAUTH_PROVIDERS

oauth_bp = Blueprint("oauth", __name__, url_prefix="/oauth")


@oauth_bp.get("/<provider>/callback")
def callback(provider: str):
    """303 to /app/calendars/oauth/<provider>/done with the same state, code or error."""
    if provider not in OAUTH_PROVIDERS:
        abort(404)
    kept = {k: request.args[k] for k in ("state", "code", "error") if k in request.args}
    target = url_for("web.calendar_connected", provider=provider) + "?" + urlencode(kept)
    response = redirect(target, code=303)
    # The code is a credential for a moment: no cache, no referrer.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
