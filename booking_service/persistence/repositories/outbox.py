"""The outbox: events, webhook endpoints, their deliveries and every attempt.

An event and its deliveries (one per endpoint that wants its type) are written in one
statement inside the transaction of the change. The worker claims one due delivery at a time
with FOR UPDATE SKIP LOCKED and holds that row lock while it sends: under normal operation no
attempt is made twice, and when a worker dies mid-attempt the lock goes with its connection and
another worker delivers again, with the same webhook-id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import (
    BigInteger,
    Boolean,
    and_,
    bindparam,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from booking_service.persistence.db import table
from booking_service.persistence.models import (
    Appointment,
    CalendarLink,
    CalendarPush,
    Contact,
    Organization,
    OutboxEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from booking_service.persistence.repositories.driver import HotStatement
from booking_service.persistence.repositories.notifications import AudienceRow, audience_select

_events = table(OutboxEvent)
_endpoints = table(WebhookEndpoint)
_deliveries = table(WebhookDelivery)
_attempts = table(WebhookAttempt)
_links = table(CalendarLink)
_pushes = table(CalendarPush)
_appointments = table(Appointment)
_organizations = table(Organization)


@dataclass(frozen=True)
class EndpointRow:
    """A webhook endpoint (secrets included: only the CLI that created it and the worker see
    them)."""

    id: int
    org_id: int
    url: str
    events: list[str] | None
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    disabled_at: datetime | None
    disabled_reason: str | None
    created_at: datetime


_ENDPOINT_COLUMNS = [_endpoints.c[f.name] for f in fields(EndpointRow)]


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


def _calendar_pushes_cte():
    """One pending push per calendar link that must hear of the change (`p_calendar`): the
    links of the appointment's resource, and those already given the appointment (it moved to
    another resource, so their calendar must drop it). The appointment is read as this
    transaction left it."""
    org = bindparam("p_org", type_=BigInteger)
    appointment = bindparam("p_appointment", type_=BigInteger)
    resource = (
        select(_appointments.c.resource_id)
        .where(_appointments.c.org_id == org, _appointments.c.id == appointment)
        .scalar_subquery()
    )
    earlier = (
        select(literal(1))
        .where(
            _pushes.c.org_id == org,
            _pushes.c.link_id == _links.c.id,
            _pushes.c.appointment_id == appointment,
        )
        .exists()
    )
    wanted = select(_links.c.org_id, _links.c.id, appointment).where(
        bindparam("p_calendar", type_=Boolean),
        _links.c.org_id == org,
        _links.c.push,
        or_(_links.c.resource_id == resource, earlier),
    )
    return (
        insert(_pushes)
        .from_select(["org_id", "link_id", "appointment_id"], wanted)
        .cte("calendar_pushes_added")
    )


def _add_event_statement():
    """INSERT the event, then one pending delivery per endpoint that wants its type (a
    disabled endpoint's deliveries wait until it is enabled: nothing is lost), and the
    calendar pushes the change needs, all as data-modifying CTEs (they run whether or not
    they are read) of one statement that SELECTs what planning the messages needs: one round
    trip. `data.phone` comes from the contact, in the same statement."""
    phone = (
        select(func.to_jsonb(Contact.phone))
        .where(Contact.org_id == bindparam("p_org"), Contact.id == bindparam("p_contact"))
        .scalar_subquery()
    )
    body = func.jsonb_set(
        bindparam("p_payload", type_=JSONB),
        literal_column("'{data,phone}'::text[]"),
        func.coalesce(phone, literal_column("'null'::jsonb")),
    )
    event = (
        insert(_events)
        .values(
            org_id=bindparam("p_org", type_=BigInteger),
            event_id=bindparam("p_event_id"),
            type=bindparam("p_type"),
            payload=body,
        )
        .returning(_events.c.id, _events.c.org_id, _events.c.type)
        .cte("event")
    )
    wanted = select(
        event.c.org_id, event.c.id, _endpoints.c.id, literal("pending"), func.now()
    ).select_from(
        event.join(
            _endpoints,
            and_(
                _endpoints.c.org_id == event.c.org_id,
                or_(
                    _endpoints.c.events.is_(None),
                    event.c.type == func.any(_endpoints.c.events),
                ),
            ),
        )
    )
    deliveries = (
        insert(_deliveries)
        .from_select(["org_id", "event_id", "endpoint_id", "status", "next_attempt_at"], wanted)
        .cte("deliveries_added")
    )
    return audience_select().add_cte(event, deliveries, _calendar_pushes_cte())


_ADD_EVENT = HotStatement(_add_event_statement())

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


class OutboxRepository:
    """Events, endpoints, deliveries and attempts."""

    def __init__(self, session: Session):
        self.session = session

    # --- events (inside the transaction of the change) ------------------------------------------

    def add_event(
        self,
        *,
        org_id: int,
        contact_id: int,
        appointment_id: int,
        event_id: str,
        event_type: str,
        payload: dict,
        calendar: bool,
    ) -> AudienceRow | None:
        """Write the event, its pending deliveries and (`calendar`: the change shows in a
        calendar) its calendar pushes, in one statement that returns whom the messages about
        it would go to (None without such contact)."""
        row = _ADD_EVENT.execute(
            self.session,
            {
                "p_org": org_id,
                "p_contact": contact_id,
                "p_appointment": appointment_id,
                "p_event_id": event_id,
                "p_type": event_type,
                "p_payload": payload,
                "p_calendar": calendar,
            },
        ).first()
        return AudienceRow(**row._asdict()) if row is not None else None

    # --- endpoints ------------------------------------------------------------------------------

    def add_org_event(self, org_id: int, event_id: str, event_type: str, payload: dict) -> None:
        """An event about the organization rather than one appointment, with a pending
        delivery for each endpoint that wants its type."""
        (stored,) = self.session.execute(
            insert(_events)
            .values(org_id=org_id, event_id=event_id, type=event_type, payload=payload)
            .returning(_events.c.id)
        ).one()
        self.session.execute(
            insert(_deliveries).from_select(
                ["org_id", "event_id", "endpoint_id", "status", "next_attempt_at"],
                select(
                    literal(org_id),
                    literal(stored),
                    _endpoints.c.id,
                    literal("pending"),
                    func.now(),
                ).where(
                    _endpoints.c.org_id == org_id,
                    or_(
                        _endpoints.c.events.is_(None),
                        literal(event_type) == func.any(_endpoints.c.events),
                    ),
                ),
            )
        )

    def add_endpoint(
        self, org_id: int, url: str, events: list[str] | None, secret: str
    ) -> EndpointRow:
        row = self.session.execute(
            insert(_endpoints)
            .values(org_id=org_id, url=url, events=events, secret=secret)
            .returning(*_ENDPOINT_COLUMNS)
        ).one()
        return EndpointRow(*row)

    def endpoint(self, endpoint_id: int) -> EndpointRow | None:
        row = self.session.execute(
            select(*_ENDPOINT_COLUMNS).where(_endpoints.c.id == endpoint_id)
        ).first()
        return EndpointRow(*row) if row is not None else None

    def endpoints(self, org_id: int) -> list[EndpointRow]:
        rows = self.session.execute(
            select(*_ENDPOINT_COLUMNS)
            .where(_endpoints.c.org_id == org_id)
            .order_by(_endpoints.c.id)
        )
        return [EndpointRow(*row) for row in rows]

    def all_endpoint_secrets(self) -> list[tuple[int, str, str | None]]:
        """(id, secret, previous secret) of every endpoint, rows locked (for re-sealing)."""
        rows = self.session.execute(
            select(_endpoints.c.id, _endpoints.c.secret, _endpoints.c.previous_secret)
            .order_by(_endpoints.c.id)
            .with_for_update()
        )
        return [(r.id, r.secret, r.previous_secret) for r in rows]

    def update_endpoint(self, endpoint_id: int, **values) -> EndpointRow | None:
        row = self.session.execute(
            update(_endpoints)
            .where(_endpoints.c.id == endpoint_id)
            .values(**values)
            .returning(*_ENDPOINT_COLUMNS)
        ).first()
        return EndpointRow(*row) if row is not None else None

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

    def endpoint_answered(
        self,
        endpoint_id: int,
        *,
        ok: bool,
        now: datetime,
        threshold: int,
        base: timedelta,
        longest: timedelta,
    ) -> int:
        """The circuit breaker: a good answer closes the circuit; a bad one counts, and from
        `threshold` failures in a row opens it for `base` doubling per further failure, at most
        `longest`. Returns the failures in a row."""
        if ok:
            self.session.execute(
                update(_endpoints)
                .where(_endpoints.c.id == endpoint_id, _endpoints.c.consecutive_failures > 0)
                .values(consecutive_failures=0, circuit_open_until=None)
            )
            return 0
        failures = self.session.execute(
            update(_endpoints)
            .where(_endpoints.c.id == endpoint_id)
            .values(consecutive_failures=_endpoints.c.consecutive_failures + 1)
            .returning(_endpoints.c.consecutive_failures)
        ).scalar_one()
        if failures >= threshold:
            wait = min(base * 2 ** min(failures - threshold, 20), longest)
            self.session.execute(
                update(_endpoints)
                .where(_endpoints.c.id == endpoint_id)
                .values(circuit_open_until=now + wait)
            )
        return failures

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

    def endpoint_count(self, org_id: int) -> int:
        """How many endpoints the organization has, its organization row locked (FOR NO KEY
        UPDATE, which bookings' foreign-key checks do not wait for) until the transaction
        ends, so that two additions at once cannot both pass a cap."""
        self.session.execute(
            select(_organizations.c.id)
            .where(_organizations.c.id == org_id)
            .with_for_update(key_share=True)
        )
        return self.session.execute(
            select(func.count()).select_from(_endpoints).where(_endpoints.c.org_id == org_id)
        ).scalar_one()

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
