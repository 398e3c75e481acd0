"""The outbox: events, written in the transaction of the change, and uow.outbox itself.

An event and its deliveries (one per endpoint that wants its type) are written in one
statement inside the transaction of the change, together with the calendar pushes it needs.
OutboxRepository joins that to the endpoints (webhook_endpoints.py) and to the worker's
deliveries and attempts (webhook_deliveries.py); the row types are importable from here too.
"""

from __future__ import annotations

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
)
from sqlalchemy.dialects.postgresql import JSONB

from booking_service.persistence.db import table
from booking_service.persistence.models import (
    Appointment,
    CalendarLink,
    CalendarPush,
    Contact,
    OutboxEvent,
    WebhookDelivery,
    WebhookEndpoint,
)
from booking_service.persistence.repositories.driver import HotStatement
from booking_service.persistence.repositories.notifications import AudienceRow, audience_select
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
_links = table(CalendarLink)
_pushes = table(CalendarPush)
_appointments = table(Appointment)


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
