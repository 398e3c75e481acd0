"""Prometheus metrics (prometheus_client).

Under gunicorn every worker is a process, so metrics use prometheus_client's multiprocess
mode when PROMETHEUS_MULTIPROC_DIR is set (deploy/gunicorn.conf.py sets it and marks dead
workers); /metrics then aggregates all workers. Without it (tests, `flask run`) the default
in-process registry is used.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

TOOL_CALLS = Counter(
    "booking_tool_calls_total",
    "VAPI tool calls answered, by tool and outcome.",
    ["tool", "outcome"],
)
CONTACT_RESOLUTIONS = Counter(
    "booking_contact_resolutions_total",
    "How callers' contacts were resolved (phone inserted/updated, email found/inserted/"
    "race-recovered, phone given to an email contact).",
    ["path"],
)
BOOKING_CONFLICTS = Counter(
    "booking_conflicts_total",
    "Bookings or moves that lost the race for a time to a concurrent one.",
)
DATABASE_ERRORS = Counter(
    "booking_database_errors_total", "Requests that could not reach the database.", ["where"]
)
REQUEST_LATENCY = Histogram(
    "booking_request_duration_seconds",
    "Webhook request latency.",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20),
)


def render() -> tuple[bytes, str]:
    """The exposition text for /metrics (all gunicorn workers in multiprocess mode)."""
    # prometheus_client itself reads this variable; we only follow its lead.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
