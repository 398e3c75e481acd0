"""Webhook endpoints: where an organization wants its events, their secrets, and the circuit
breaker that stops trying an endpoint which keeps failing."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import (
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session

from booking_service.persistence.db import table
from booking_service.persistence.models import (
    Organization,
    WebhookEndpoint,
)

_endpoints = table(WebhookEndpoint)
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


class WebhookEndpoints:
    """An organization's endpoints: added, listed, changed, counted, and their circuit."""

    def __init__(self, session: Session):
        self.session = session

    # --- endpoints ------------------------------------------------------------------------------

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

    # --- the worker -----------------------------------------------------------------------------

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
