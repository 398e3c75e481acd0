"""HTML error pages for /app/ (the rest of the service answers errors as JSON)."""

from __future__ import annotations

from flask import g, make_response, render_template

from booking_service.web.blueprint import security_headers

_MESSAGES = {
    400: (
        "The form could not be accepted",
        "It may have been open too long or sent from another page. Go back, reload it and "
        "try again.",
    ),
    403: ("Owners only", "Only an owner of the organization can change its settings."),
    404: ("Not found", "There is no such page, or it is not your organization's."),
    405: ("Not allowed", "This page cannot be used that way."),
    429: ("Too many requests", "Wait a moment and try again."),
    500: ("Something went wrong", "The problem was logged. Try again in a moment."),
    503: (
        "Not available right now",
        "The diary cannot be reached at the moment (or the server has no SECRET_KEY). "
        "Try again shortly.",
    ),
}


def error_page(status: int):
    """The page for an HTTP error status, with the pages' security headers."""
    title, text = _MESSAGES.get(status, _MESSAGES[500])
    g.setdefault("account", None)
    g.setdefault("org", None)
    body = render_template("web/error.html", status=status, title=title, text=text)
    return security_headers(make_response(body, status))
