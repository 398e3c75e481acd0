"""GET /api/health: liveness, database and schema, cheaply."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify

from booking_service.runtime.extensions import runtime
from booking_service.use_cases.health import (
    calendars_status,
    check_health,
    messages_status,
    outbox_status,
)

bp = Blueprint("health", __name__, url_prefix="/api")
log = logging.getLogger(__name__)


@bp.get("/health")
def health():
    """200 with every part "ok", or 503 naming the failing part (no internals). A lagging
    outbox (`"outbox": "lagging"`), a stale calendar link (`"calendars": "stale"`) or a sending
    budget used up today (`"messages": "budget_reached"`) is reported but is not an outage of
    the service: still 200."""
    rt = runtime()
    report = check_health(rt.engine, rt.head_revision)
    status = 200 if all(v == "ok" for v in report.values()) else 503
    outbox = outbox_status(rt.uow(), rt.settings.outbox_lag_alert_s) if status == 200 else "unknown"
    calendars = calendars_status(rt.uow()) if status == 200 else "unknown"
    messages = messages_status(rt.uow()) if status == 200 else "unknown"
    body = {
        "status": "ok" if status == 200 else "unavailable",
        **report,
        "outbox": outbox,
        "calendars": calendars,
        "messages": messages,
    }
    return jsonify(body), status
