"""GET /metrics for Prometheus, guarded by a token or limited to loopback clients."""

from __future__ import annotations

import hmac
import ipaddress

from flask import Blueprint, Response, abort, request

from booking_service.errors import DatabaseUnavailable
from booking_service.extensions import runtime
from booking_service.metrics import render
from booking_service.use_cases.health import outbox_snapshot

bp = Blueprint("metrics", __name__)


def _allowed() -> bool:
    token = runtime().settings.metrics_token
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(sent.encode(), token.encode())
    # No token configured: only scrapers on this machine (the client address is the real one:
    # ProxyFix trusts exactly one proxy hop).
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


@bp.get("/metrics")
def metrics():
    """Prometheus exposition format; 404 for anyone not allowed (it does not exist for them)."""
    if not _allowed():
        abort(404)
    try:
        outbox = outbox_snapshot(runtime().uow())
    except DatabaseUnavailable:
        outbox = None  # the process metrics are still worth scraping
    body, content_type = render(outbox)
    return Response(body, content_type=content_type)
