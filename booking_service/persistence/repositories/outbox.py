"""The outbox: events, written in the transaction of the change, and uow.outbox itself.

An event and its deliveries (one per endpoint that wants its type) are written in one
statement inside the transaction of the change, together with the calendar pushes it needs.
OutboxRepository joins that to the endpoints (webhook_endpoints.py) and to the worker's
deliveries and attempts (webhook_deliveries.py); the row types are importable from here too.
"""

from __future__ import annotations

from sqlalchemy import (
    bindparam,
    func,
    insert,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from booking_service.persistence.db import table
from booking_service.persistence.models import (
    OutboxEvent,
    WebhookDelivery,
    WebhookEndpoint,
)
from booking_service.persistence.repositories.driver import HotStatement
from booking_service.persistence.repositories.notifications import AudienceRow
from booking_service.persistence.repositories.webhook_deliveries import (
    AttemptRow,
    DueDelivery,
    WebhookDeliveries,
)
from booking_service.persistence.repositories.webhook_endpoints import (
    EndpointRow,
    WebhookEndpoints,
)

__all__ = ["AttemptRow", "DueDelivery", "EndpointRow", "OutboxRepository"]


_events = table(OutboxEvent)
_endpoints = table(WebhookEndpoint)
_deliveries = table(WebhookDelivery)


# The event, its pending deliveries (one per endpoint that wants its type) and the calendar
# pushes the change needs are written, and what planning the messages needs of the
# organization and the contact is read, by one PL/pgSQL function: one round trip, and plans
# kept per server connection even behind a transaction pooler, where nothing can be prepared
# (#30; the statement and its reasons are in migration f3b7d2a9c5e1).
_ADD_EVENT = HotStatement(
    text(
        "SELECT * FROM booking_add_event(CAST(:p_org AS bigint), CAST(:p_contact AS bigint), "
        "CAST(:p_appointment AS bigint), CAST(:p_event_id AS text), CAST(:p_type AS text), "
        "CAST(:p_payload AS jsonb), CAST(:p_calendar AS boolean))"
    ).bindparams(bindparam("p_payload", type_=JSONB))
)


class OutboxRepository(WebhookEndpoints, WebhookDeliveries):
    """Events, endpoints, deliveries and attempts (the last two from their modules)."""

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
