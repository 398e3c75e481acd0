"""What every platform's webhook blueprint does around the pipeline: a request id, the time the
request reached the edge (the budget counts from it), its latency metric, a bounded body."""

from __future__ import annotations

import re
import time
import uuid

from flask import Blueprint, abort, g, request

from booking_service.runtime.metrics import REQUEST_LATENCY
from booking_service.runtime.proxy import TRUSTED_KEY

# A request id we log and echo: short and plain, or we make our own (a 7 KB id was echoed,
# and spaces in one could forge fields in a log line).
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# A clock reading further in the past than this is not an arrival time (a broken header).
_MAX_QUEUE_AGE_S = 3600.0


def instrument(bp: Blueprint, latency_label: str) -> None:
    """Give each request of `bp` g.request_id, g.started (perf counter) and g.arrived (see
    `arrival`), and observe its latency under `latency_label`."""

    @bp.before_request
    def _request_id():
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex[:16]
        g.started = time.perf_counter()
        g.arrived = arrival(
            request.headers.get("X-Request-Start") if request.environ.get(TRUSTED_KEY) else None
        )

    @bp.after_request
    def _observe(response):
        REQUEST_LATENCY.labels(latency_label).observe(time.perf_counter() - g.started)
        return response


def arrival(header: str | None) -> float:
    """When the request reached the edge, on the time.monotonic() clock.

    nginx sends `X-Request-Start: t=<seconds since the epoch, with milliseconds>` (only believed
    from a trusted proxy). Time spent queued behind busy worker threads then counts against the
    budget: VAPI and nginx started counting at arrival, not when a thread picked the request up.
    Without the header, or with one that is unreadable or ahead of our clock, it is now.
    """
    now = time.monotonic()
    if not header:
        return now
    try:
        sent = float(header.strip().removeprefix("t="))
    except ValueError:
        return now
    if sent > 1e14:  # microseconds (some proxies), then milliseconds
        sent /= 1e6
    elif sent > 1e11:
        sent /= 1e3
    queued = time.time() - sent
    if not 0 < queued < _MAX_QUEUE_AGE_S:  # NaN and inf fail this too
        return now
    return now - queued


def read_body(limit: int) -> bytes:
    """The request body, or 413 when it exceeds `limit` (chunked bodies included)."""
    if (request.content_length or 0) > limit:
        abort(413)
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        abort(413)
    return body
