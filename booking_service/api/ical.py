"""GET /ical/<token>.ics: the ICS feed a calendar app subscribes to (`calendar feed`).

The token is the only credential (calendar apps cannot send headers): the organization's id
and 256 bits of randomness, stored only as a hash; every unknown token gets the same 404. The
document carries names and masked phones: never cached by shared caches.
"""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Response, abort

from booking_service.api.errors import error_response
from booking_service.domain.errors import DatabaseUnavailable, NotFound
from booking_service.runtime.extensions import runtime
from booking_service.use_cases.calendar_links import feed_document

bp = Blueprint("ical", __name__, url_prefix="/ical")
log = logging.getLogger(__name__)

# `<org id>.<random>` (use_cases/calendars.feed_url).
_TOKEN = re.compile(r"[0-9]{1,19}\.[A-Za-z0-9_-]{20,100}")


@bp.get("/<token>.ics")
def feed(token: str):
    """The feed's text/calendar document; 404 for an unknown or rotated token."""
    if not _TOKEN.fullmatch(token):
        abort(404)
    try:
        body = feed_document(runtime().uow(), token)
    except NotFound:
        abort(404)
    except DatabaseUnavailable:
        return error_response(503, "The calendar is not available right now.")
    return Response(
        body,
        content_type="text/calendar; charset=utf-8",
        headers={
            "Cache-Control": "private, max-age=300",
            "Content-Disposition": 'inline; filename="appointments.ics"',
            "X-Content-Type-Options": "nosniff",
        },
    )
