"""Calendar links: a resource's calendar on a CalDAV server (LinkRow), added, listed, changed
and removed, the pushes waiting per link, and how fresh each link's busy times are."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import (
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session

from booking_service.persistence.db import table
from booking_service.persistence.models import (
    Appointment,
    CalendarLink,
    CalendarPush,
)
from booking_service.persistence.repositories.common import (
    CANCELLED,
)

_links = table(CalendarLink)
_pushes = table(CalendarPush)
_appointments = table(Appointment)


@dataclass(frozen=True)
class LinkRow:
    """A calendar link (the password sealed; only the worker opens it)."""

    id: int
    org_id: int
    resource_id: int
    url: str
    username: str | None
    password: str | None
    push: bool
    block: bool
    max_staleness_minutes: int
    when_stale: str
    last_poll_at: datetime | None
    last_good_sync_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    created_at: datetime
    consecutive_failures: int
    next_poll_at: datetime | None
    provider: str
    account: str | None
    calendar_id: str | None
    reconnect_needed: bool
    sync_state: str | None

    def stale_at(self, now: datetime) -> bool:
        """A blocking link whose busy times were not read within its limit (or never), or
        whose grant is gone."""
        if not self.block:
            return False
        if self.reconnect_needed:
            return True
        if self.last_good_sync_at is None:
            return True
        return now - self.last_good_sync_at > timedelta(minutes=self.max_staleness_minutes)


LINK_COLUMNS = [_links.c[f.name] for f in fields(LinkRow)]


class CalendarLinks:
    """The links of calendars; the base of CalendarRepository (uow.calendars)."""

    def __init__(self, session: Session):
        self.session = session

    # --- links ----------------------------------------------------------------------------------

    def add_link(self, **values) -> LinkRow:
        row = self.session.execute(insert(_links).values(**values).returning(*LINK_COLUMNS)).one()
        return LinkRow(*row)

    def link(self, link_id: int) -> LinkRow | None:
        row = self.session.execute(select(*LINK_COLUMNS).where(_links.c.id == link_id)).first()
        return LinkRow(*row) if row is not None else None

    def links(self, org_id: int) -> list[LinkRow]:
        rows = self.session.execute(
            select(*LINK_COLUMNS).where(_links.c.org_id == org_id).order_by(_links.c.id)
        )
        return [LinkRow(*row) for row in rows]

    def all_links(self) -> list[LinkRow]:
        rows = self.session.execute(select(*LINK_COLUMNS).order_by(_links.c.id))
        return [LinkRow(*row) for row in rows]

    def all_passwords(self) -> list[tuple[int, str]]:
        """(id, sealed password) of every link with one, rows locked (for re-sealing)."""
        rows = self.session.execute(
            select(_links.c.id, _links.c.password)
            .where(_links.c.password.is_not(None))
            .order_by(_links.c.id)
            .with_for_update(key_share=True)
        )
        return [(r.id, r.password) for r in rows]

    def link_of(self, org_id: int, resource_id: int, provider: str, calendar_id: str | None):
        """The resource's link to that provider's calendar, if any (a reconnection replaces
        its grant instead of adding a second link)."""
        row = self.session.execute(
            select(*LINK_COLUMNS).where(
                _links.c.org_id == org_id,
                _links.c.resource_id == resource_id,
                _links.c.provider == provider,
                _links.c.calendar_id.is_not_distinct_from(calendar_id),
            )
        ).first()
        return LinkRow(*row) if row is not None else None

    def needs_reconnect(self, link_id: int, error: str, now: datetime) -> bool:
        """Mark the link's grant gone: stale from now on (last_good_sync_at cleared, so the
        booking path's rule sees it), neither polled nor pushed until connected again. True
        only for the call that changed it (one `calendar.disconnected` event)."""
        result = self.session.execute(
            update(_links)
            .where(_links.c.id == link_id, ~_links.c.reconnect_needed)
            .values(
                reconnect_needed=True,
                last_good_sync_at=None,
                last_error=error,
                last_error_at=now,
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def update_link(self, link_id: int, **values) -> None:
        self.session.execute(update(_links).where(_links.c.id == link_id).values(**values))

    def delete_link(self, link_id: int) -> None:
        """Remove the link; its busy times and waiting pushes go with it."""
        self.session.execute(delete(_links).where(_links.c.id == link_id))

    def waiting(self, org_id: int) -> dict[int, int]:
        """Pending pushes per link (appointments whose calendar event is not up to date)."""
        rows = self.session.execute(
            select(_pushes.c.link_id, func.count(func.distinct(_pushes.c.appointment_id)))
            .where(_pushes.c.org_id == org_id, _pushes.c.status == "pending")
            .group_by(_pushes.c.link_id)
        )
        return {link_id: n for link_id, n in rows}

    def push_upcoming(self, link: LinkRow, now: datetime) -> int:
        """Queue a push of every appointment of the link's resource that has not ended yet (a
        newly linked calendar shows what is already booked)."""
        result = self.session.execute(
            insert(_pushes).from_select(
                ["org_id", "link_id", "appointment_id"],
                select(literal(link.org_id), literal(link.id), _appointments.c.id).where(
                    _appointments.c.org_id == link.org_id,
                    _appointments.c.resource_id == link.resource_id,
                    _appointments.c.status != CANCELLED,
                    _appointments.c.ends_at > now,
                ),
            )
        )
        return result.rowcount  # type: ignore[attr-defined]

    # --- health and metrics ---------------------------------------------------------------------

    def sync_ages(self, now: datetime) -> list[tuple[int, int, float | None, bool]]:
        """(org_id, link_id, seconds since the last good sync or None, stale) of every blocking
        link."""
        rows = self.session.execute(select(*LINK_COLUMNS).where(_links.c.block))
        ages = []
        for row in rows:
            link = LinkRow(*row)
            synced = link.last_good_sync_at
            age = (now - synced).total_seconds() if synced is not None else None
            ages.append((link.org_id, link.id, age, link.stale_at(now)))
        return ages
