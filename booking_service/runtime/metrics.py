"""Prometheus metrics (prometheus_client).

Under gunicorn every worker is a process, so metrics use prometheus_client's multiprocess
mode when PROMETHEUS_MULTIPROC_DIR is set (deploy/gunicorn.conf.py sets it and marks dead
workers); /metrics then aggregates all workers. Without it (tests, `flask run`) the default
in-process registry is used.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from booking_service.persistence.models import NOTIFICATION_STATUSES

TOOL_CALLS = Counter(
    "booking_tool_calls_total",
    "VAPI tool calls answered, by tool and outcome.",
    ["tool", "outcome"],
)
CONTACT_RESOLUTIONS = Counter(
    "booking_contact_resolutions_total",
    "How callers' contacts were resolved (phone inserted/updated, email found/inserted/"
    "race-recovered).",
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


@dataclass(frozen=True, eq=False)  # registered as a collector: hashed by identity
class OutboxSnapshot:
    """The outbox as the database sees it when scraped, so the figures are right whichever
    process (web worker or outbox worker, on whichever host) did the work."""

    lag_s: float  # how long the longest-waiting due delivery has waited
    oldest_undelivered_s: float  # age of the oldest event not yet delivered everywhere
    deliveries: dict[str, int]  # by status
    attempts_last_hour: dict[str, int]  # by outcome
    no_shows: int = 0  # appointments marked as missed by the caller
    messages: dict[str, int] = field(default_factory=dict)  # notifications by status
    # (org_id, link_id, seconds since the last good read or None, stale) per blocking link
    calendars: list[tuple[int, int, float | None, bool]] = field(default_factory=list)

    def collect(self):
        yield GaugeMetricFamily(
            "booking_outbox_lag_seconds",
            "How long the longest-waiting due webhook delivery has waited (0: none waiting).",
            value=self.lag_s,
        )
        yield GaugeMetricFamily(
            "booking_outbox_oldest_undelivered_seconds",
            "Age of the oldest event not yet delivered to every endpoint (0: none).",
            value=self.oldest_undelivered_s,
        )
        deliveries = GaugeMetricFamily(
            "booking_webhook_deliveries",
            "Webhook deliveries by status (pending, delivered, failed).",
            labels=["status"],
        )
        for status in ("pending", "delivered", "failed"):
            deliveries.add_metric([status], self.deliveries.get(status, 0))
        yield deliveries
        attempts = GaugeMetricFamily(
            "booking_webhook_attempts_last_hour",
            "Webhook delivery attempts in the last hour, by outcome.",
            labels=["outcome"],
        )
        for outcome in ("delivered", "retry", "failed", "disabled"):
            attempts.add_metric([outcome], self.attempts_last_hour.get(outcome, 0))
        yield attempts
        yield CounterMetricFamily(
            "booking_no_shows",
            "Appointments marked as missed by the caller (appointment mark --no-show).",
            value=self.no_shows,
        )
        messages = GaugeMetricFamily(
            "booking_notifications",
            "Confirmation and reminder messages by status.",
            labels=["status"],
        )
        for status in NOTIFICATION_STATUSES:
            messages.add_metric([status], self.messages.get(status, 0))
        yield messages
        ages = GaugeMetricFamily(
            "booking_calendar_sync_age_seconds",
            "Seconds since each blocking calendar link's busy times were last read "
            "successfully (+Inf: never).",
            labels=["org_id", "link_id"],
        )
        for org_id, link_id, age, _stale in self.calendars:
            ages.add_metric([str(org_id), str(link_id)], math.inf if age is None else age)
        yield ages
        yield GaugeMetricFamily(
            "booking_calendars_stale",
            "Blocking calendar links whose busy times are older than their limit.",
            value=sum(1 for *_, stale in self.calendars if stale),
        )


def render(outbox: OutboxSnapshot | None = None) -> tuple[bytes, str]:
    """The exposition text for /metrics (all gunicorn workers in multiprocess mode), plus the
    outbox gauges when the database could be read."""
    # prometheus_client itself reads this variable; we only follow its lead.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    if outbox is not None:
        snapshot = CollectorRegistry()
        snapshot.register(outbox)
        body += generate_latest(snapshot)
    return body, CONTENT_TYPE_LATEST
