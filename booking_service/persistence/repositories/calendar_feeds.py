"""ICS feeds (a secret subscription URL per resource or for the whole organization) and the
owner's listing of appointments, which is also what a feed shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session

from booking_service.persistence.db import table
from booking_service.persistence.models import (
    Appointment,
    CalendarFeed,
    Contact,
    Resource,
)
from booking_service.persistence.repositories.common import (
    CANCELLED,
    WITH_CONTACT_AND_RESOURCE,
)

_feeds = table(CalendarFeed)
_appointments = table(Appointment)
_contacts = table(Contact)
_resources = table(Resource)


@dataclass(frozen=True)
class ListedAppointment:
    """One line of the owner's listing (and one event of the ICS feed)."""

    org_id: int
    reference: str
    sequence: int
    starts_at: datetime
    ends_at: datetime
    resource_id: int
    resource: str
    name: str | None
    service: str | None
    status: str
    phone: str | None
    email: str | None
    unconfirmed: bool
    confirmed_at: datetime | None = None  # the caller confirmed it by text (#29)


_LISTED_COLUMNS = (
    _appointments.c.org_id,
    _appointments.c.reference,
    _appointments.c.sequence,
    _appointments.c.starts_at,
    _appointments.c.ends_at,
    _appointments.c.resource_id,
    _resources.c.name.label("resource"),
    _appointments.c.name,
    _appointments.c.service,
    _appointments.c.status,
    _contacts.c.phone,
    _appointments.c.email,
    _appointments.c.unconfirmed,
    _appointments.c.confirmed_at,
)
_LISTED = select(*_LISTED_COLUMNS).select_from(WITH_CONTACT_AND_RESOURCE)


def _feed_of(org_id: int, resource_id: int | None):
    """The feed of one resource, or (None) the organization's whole feed."""
    resource = (
        _feeds.c.resource_id == resource_id
        if resource_id is not None
        else _feeds.c.resource_id.is_(None)
    )
    return (_feeds.c.org_id == org_id) & resource


class CalendarFeeds:
    """Feeds and the listing; part of CalendarRepository (uow.calendars)."""

    session: Session

    # --- feeds ----------------------------------------------------------------------------------

    def set_feed(self, org_id: int, resource_id: int | None, token_hash: str) -> bool:
        """Replace the feed's token (or create the feed); True when one existed."""
        match = _feed_of(org_id, resource_id)
        replaced = self.session.execute(
            update(_feeds).where(match).values(token_hash=token_hash, created_at=func.now())
        ).rowcount  # type: ignore[attr-defined]
        if not replaced:
            self.session.execute(
                insert(_feeds).values(org_id=org_id, resource_id=resource_id, token_hash=token_hash)
            )
        return bool(replaced)

    def remove_feed(self, org_id: int, resource_id: int | None) -> bool:
        """Delete the feed (its URL then answers 404); True when there was one."""
        removed = self.session.execute(delete(_feeds).where(_feed_of(org_id, resource_id))).rowcount  # type: ignore[attr-defined]
        return bool(removed)

    def has_feed(self, org_id: int, resource_id: int | None) -> bool:
        match = _feed_of(org_id, resource_id)
        return self.session.execute(select(_feeds.c.id).where(match)).first() is not None

    def feed(self, org_id: int, token_hash: str) -> tuple[int, int | None] | None:
        """(org_id, resource_id or None) of the organization's feed with this token."""
        row = self.session.execute(
            select(_feeds.c.org_id, _feeds.c.resource_id).where(
                _feeds.c.org_id == org_id, _feeds.c.token_hash == token_hash
            )
        ).first()
        return (row.org_id, row.resource_id) if row is not None else None

    # --- the listing ----------------------------------------------------------------------------

    def appointments(
        self,
        org_id: int,
        start: datetime,
        end: datetime,
        *,
        resource_id: int | None = None,
        include_cancelled: bool = True,
    ) -> list[ListedAppointment]:
        """The organization's appointments starting in [start, end), by start."""
        stmt = _LISTED.where(
            _appointments.c.org_id == org_id,
            _appointments.c.starts_at >= start,
            _appointments.c.starts_at < end,
        ).order_by(_appointments.c.starts_at, _resources.c.name)
        if resource_id is not None:
            stmt = stmt.where(_appointments.c.resource_id == resource_id)
        if not include_cancelled:
            stmt = stmt.where(_appointments.c.status != CANCELLED)
        return [ListedAppointment(**row._mapping) for row in self.session.execute(stmt)]
