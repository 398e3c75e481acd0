"""Webhook deliveries and their attempts: the worker's claim of a due delivery, the record of
each attempt, what the owner sees of them (and "send again"), and their health metrics.

The worker claims one due delivery at a time with FOR UPDATE SKIP LOCKED and holds that row
lock while it sends: under normal operation no attempt is made twice, and when a worker dies
mid-attempt the lock goes with its connection and another worker delivers again, with the same
webhook-id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    bindparam,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from booking_service.persistence.db import table
from booking_service.persistence.models import (
    OutboxEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

_events = table(OutboxEvent)
_endpoints = table(WebhookEndpoint)
_deliveries = table(WebhookDelivery)
_attempts = table(WebhookAttempt)


@dataclass(frozen=True)
class DueDelivery:
    """A delivery the worker holds (row-locked) while it sends it."""

    id: int
    org_id: int
    attempts: int
    endpoint_id: int
    url: str
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    event_id: str
    payload: dict


@dataclass(frozen=True)
class AttemptRow:
    """One attempt, as `webhook deliveries` lists it."""

    event_id: str
    event_type: str
    delivery_status: str
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    outcome: str


_CLAIM_DUE = (
    select(
        _deliveries.c.id,
        _deliveries.c.org_id,
        _deliveries.c.attempts,
        _endpoints.c.id.label("endpoint_id"),
        _endpoints.c.url,
        _endpoints.c.secret,
        _endpoints.c.previous_secret,
        _endpoints.c.previous_secret_expires_at,
        _events.c.event_id,
        _events.c.payload,
    )
    .select_from(
        _deliveries.join(_endpoints, _endpoints.c.id == _deliveries.c.endpoint_id).join(
            _events, _events.c.id == _deliveries.c.event_id
        )
    )
    .where(
        _deliveries.c.status == "pending",
        _deliveries.c.next_attempt_at <= bindparam("p_now"),
        _endpoints.c.disabled_at.is_(None),
        # An endpoint whose circuit is open is not tried: its deliveries wait, costing nothing.
        _endpoints.c.circuit_open_until.is_(None)
        | (_endpoints.c.circuit_open_until <= bindparam("p_now")),
        # Organizations with a delivery in flight in this worker wait for it (fairness).
        _deliveries.c.org_id.not_in(bindparam("p_busy", expanding=True)),
    )
    # Round-robin: organizations served most recently go last, then the oldest due first.
    .order_by(
        _deliveries.c.org_id.in_(bindparam("p_recent", expanding=True)),
        _deliveries.c.next_attempt_at,
    )
    .limit(1)
    .with_for_update(of=_deliveries, skip_locked=True)
)


class WebhookDeliveries:
    """Deliveries and attempts; part of OutboxRepository (uow.outbox)."""

    session: Session

    # --- the worker -----------------------------------------------------------------------------

    def claim_due(
        self, now: datetime, *, busy: Sequence[int] = (), recent: Sequence[int] = ()
    ) -> DueDelivery | None:
        """The oldest due pending delivery whose endpoint's circuit is closed, of an
        organization not `busy` (and preferably not `recent`), row-locked until commit; None
        when none is due (or every due one is held by another worker)."""
        row = self.session.execute(
            _CLAIM_DUE,
            # [0] for none: no organization has id 0, and the statement keeps one shape.
            {"p_now": now, "p_busy": list(busy) or [0], "p_recent": list(recent) or [0]},
        ).first()
        return DueDelivery(**row._mapping) if row is not None else None

    def record_attempt(
        self,
        org_id: int,
        delivery_id: int,
        *,
        attempted_at: datetime,
        status_code: int | None,
        latency_ms: int,
        error: str | None,
        outcome: str,
        next_attempt_at: datetime | None,
    ) -> None:
        """Log the attempt and move the delivery on: delivered, retried at `next_attempt_at`,
        or failed (also when the endpoint was disabled by a 410)."""
        self.session.execute(
            insert(_attempts).values(
                org_id=org_id,
                delivery_id=delivery_id,
                attempted_at=attempted_at,
                status_code=status_code,
                latency_ms=latency_ms,
                error=error,
                outcome=outcome,
            )
        )
        status = {"delivered": "delivered", "retry": "pending"}.get(outcome, "failed")
        self.session.execute(
            update(_deliveries)
            .where(_deliveries.c.id == delivery_id)
            .values(
                status=status,
                attempts=_deliveries.c.attempts + 1,
                next_attempt_at=next_attempt_at if status == "pending" else None,
                delivered_at=attempted_at if status == "delivered" else None,
            )
        )

    # --- what the owner sees --------------------------------------------------------------------

    def attempts(self, endpoint_id: int, *, failed_only: bool, limit: int) -> list[AttemptRow]:
        """Every attempt at this endpoint, newest first (`failed_only`: not delivered ones)."""
        stmt = (
            select(
                _events.c.event_id,
                _events.c.type,
                _deliveries.c.status,
                _attempts.c.attempted_at,
                _attempts.c.status_code,
                _attempts.c.latency_ms,
                _attempts.c.error,
                _attempts.c.outcome,
            )
            .select_from(
                _attempts.join(_deliveries, _deliveries.c.id == _attempts.c.delivery_id).join(
                    _events, _events.c.id == _deliveries.c.event_id
                )
            )
            .where(_deliveries.c.endpoint_id == endpoint_id)
            .order_by(_attempts.c.attempted_at.desc(), _attempts.c.id.desc())
            .limit(limit)
        )
        if failed_only:
            stmt = stmt.where(_attempts.c.outcome != "delivered")
        return [AttemptRow(*row) for row in self.session.execute(stmt)]

    def event_org(self, event_id: str) -> int | None:
        """The organization of the event with this public id, if there is one."""
        return self.session.scalar(select(_events.c.org_id).where(_events.c.event_id == event_id))

    def replay(
        self, event_id: str, endpoint_id: int | None, now: datetime
    ) -> tuple[list[int], list[int]]:
        """Send the event again: to `endpoint_id`, else to every enabled endpoint of its
        organization that wants its type (one added since included). Returns the endpoint ids
        it was queued for, and those whose delivery of it is still pending (not sent yet):
        those are left exactly as they are (no new attempt, no reset of its retries)."""
        event = self.session.execute(
            select(_events.c.id, _events.c.org_id, _events.c.type).where(
                _events.c.event_id == event_id
            )
        ).first()
        if event is None:
            return [], []
        targets = select(_endpoints.c.id).where(
            _endpoints.c.org_id == event.org_id, _endpoints.c.disabled_at.is_(None)
        )
        if endpoint_id is not None:
            targets = targets.where(_endpoints.c.id == endpoint_id)
        else:
            targets = targets.where(
                or_(
                    _endpoints.c.events.is_(None),
                    literal(event.type) == func.any(_endpoints.c.events),
                )
            )
        queued: list[int] = []
        pending: list[int] = []
        for target in self.session.scalars(targets.order_by(_endpoints.c.id)):
            stmt = pg_insert(_deliveries).values(
                org_id=event.org_id,
                event_id=event.id,
                endpoint_id=target,
                status="pending",
                next_attempt_at=now,
            )
            # Only a delivery that is over (delivered or failed) starts again; the WHERE is
            # checked on the row as it is once its lock is ours, so two replays at once queue
            # it once.
            row = self.session.execute(
                stmt.on_conflict_do_update(
                    constraint="uq_webhook_deliveries_org_id_event_id_endpoint_id",
                    set_={"status": "pending", "next_attempt_at": now, "attempts": 0},
                    where=_deliveries.c.status != "pending",
                ).returning(_deliveries.c.endpoint_id)
            ).first()
            (queued if row is not None else pending).append(target)
        if queued:
            # Asked by the owner (rate-limited): try now, whatever the circuit breaker said.
            self.session.execute(
                update(_endpoints)
                .where(_endpoints.c.id.in_(queued))
                .values(consecutive_failures=0, circuit_open_until=None)
            )
        return queued, pending

    # --- health and metrics ---------------------------------------------------------------------

    def oldest_due(self, now: datetime) -> datetime | None:
        """When the longest-waiting due delivery (of an enabled endpoint) became due."""
        return self.session.scalar(
            select(func.min(_deliveries.c.next_attempt_at))
            .select_from(_deliveries.join(_endpoints, _endpoints.c.id == _deliveries.c.endpoint_id))
            .where(
                _deliveries.c.status == "pending",
                _deliveries.c.next_attempt_at <= now,
                _endpoints.c.disabled_at.is_(None),
            )
        )

    def oldest_undelivered(self) -> datetime | None:
        """When the oldest event still waiting for any delivery happened."""
        return self.session.scalar(
            select(func.min(_events.c.created_at))
            .select_from(_deliveries.join(_events, _events.c.id == _deliveries.c.event_id))
            .where(_deliveries.c.status == "pending")
        )

    def attempts_since(self, since: datetime) -> dict[str, int]:
        """Attempts made since `since`, by outcome."""
        rows = self.session.execute(
            select(_attempts.c.outcome, func.count())
            .where(_attempts.c.attempted_at >= since)
            .group_by(_attempts.c.outcome)
        )
        return {outcome: n for outcome, n in rows}

    def delivery_counts(self) -> dict[str, int]:
        rows = self.session.execute(
            select(_deliveries.c.status, func.count()).group_by(_deliveries.c.status)
        )
        return {status: n for status, n in rows}
