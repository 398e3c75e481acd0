"""Health: can we reach the database, and is its schema what the code needs?"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from booking_service.domain.errors import DatabaseUnavailable
from booking_service.domain.times import utc_now
from booking_service.persistence.schema_check import check_schema
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.runtime.metrics import OutboxSnapshot

log = logging.getLogger(__name__)


def _waited(now: datetime, since: datetime | None) -> float:
    """Seconds from `since` to `now`; 0 when nothing is waiting."""
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0


def outbox_lag(uow: AbstractUnitOfWork) -> float:
    """Seconds the longest-waiting due webhook delivery has waited (0 when none is due)."""
    now = utc_now()
    with uow:
        return _waited(now, uow.outbox.oldest_due(now))


def outbox_snapshot(uow: AbstractUnitOfWork) -> OutboxSnapshot:
    """The outbox's figures for /metrics, read in one unit of work."""
    now = utc_now()
    with uow:
        return OutboxSnapshot(
            lag_s=_waited(now, uow.outbox.oldest_due(now)),
            oldest_undelivered_s=_waited(now, uow.outbox.oldest_undelivered()),
            deliveries=uow.outbox.delivery_counts(),
            attempts_last_hour=uow.outbox.attempts_since(now - timedelta(hours=1)),
            no_shows=uow.notifications.no_shows(),
            messages=uow.notifications.status_counts(),
            calendars=uow.calendars.sync_ages(now),
        )


def outbox_status(uow: AbstractUnitOfWork, alert_after_s: int) -> str:
    """ "ok", or "lagging" when a due delivery has waited longer than `alert_after_s` (the
    worker is down or behind); "unknown" when the database cannot say."""
    try:
        return "lagging" if outbox_lag(uow) > alert_after_s else "ok"
    except DatabaseUnavailable:
        return "unknown"


def calendars_status(uow: AbstractUnitOfWork) -> str:
    """ "ok", or "stale" when a blocking calendar link was not read within its limit (its
    resource's bookings get the link's policy); "unknown" when the database cannot say."""
    try:
        with uow:
            ages = uow.calendars.sync_ages(utc_now())
    except DatabaseUnavailable:
        return "unknown"
    return "stale" if any(stale for *_, stale in ages) else "ok"


def messages_status(uow: AbstractUnitOfWork) -> str:
    """ "ok", or "budget_reached" when an organization's daily SMS or email budget refused a
    message within the last day (its owner got `messages.budget_reached`); "unknown" when the
    database cannot say."""
    try:
        with uow:
            over = uow.counters.over_budget(utc_now() - timedelta(days=1))
    except DatabaseUnavailable:
        return "unknown"
    return "budget_reached" if over else "ok"


def check_health(engine: Engine, head: str) -> dict[str, str]:
    """{"database": "ok"|"unavailable", "schema": "ok"|"outdated"|"unknown"}."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            problems = check_schema(conn, head)
    except DBAPIError as exc:
        log.warning("health: database unavailable (%s)", type(exc.orig or exc).__name__)
        return {"database": "unavailable", "schema": "unknown"}
    if problems:
        log.warning("health: schema problems: %s", "; ".join(problems))
        return {"database": "ok", "schema": "outdated"}
    return {"database": "ok", "schema": "ok"}
