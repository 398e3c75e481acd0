"""GET /api/health: liveness, database and schema, cheaply."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify

from booking_service.extensions import runtime
from booking_service.use_cases.health import check_health

bp = Blueprint("health", __name__, url_prefix="/api")
log = logging.getLogger(__name__)


@bp.get("/health")
def health():
    """200 with every part "ok", or 503 naming the failing part (no internals)."""
    rt = runtime()
    report = check_health(rt.engine, rt.head_revision)
    status = 200 if all(v == "ok" for v in report.values()) else 503
    body = {"status": "ok" if status == 200 else "unavailable", **report}
    return jsonify(body), status
