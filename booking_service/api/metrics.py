"""GET /metrics for Prometheus, guarded by a token or limited to loopback clients."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, request

from booking_service.domain.errors import DatabaseUnavailable
from booking_service.runtime.extensions import runtime
from booking_service.runtime.metrics import render
from booking_service.runtime.proxy import PEER_KEY, is_loopback
from booking_service.use_cases.health import outbox_snapshot

bp = Blueprint("metrics", __name__)


def _allowed() -> bool:
    token = runtime().settings.metrics_token
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(sent.encode(), token.encode())
    # No token configured: only scrapers on this machine. The socket peer decides, never a
    # header; and a request nginx passed on (peer loopback) is judged by the client it names.
    return is_loopback(request.environ.get(PEER_KEY)) and is_loopback(request.remote_addr)


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
