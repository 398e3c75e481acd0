"""What several repositories share: SQLSTATEs they map and the range the exclusion
constraint indexes."""

from __future__ import annotations

from sqlalchemy import (
    ColumnClause,
    Exists,
    and_,
    exists,
    func,
    literal_column,
)

from booking_service.persistence.db import table
from booking_service.persistence.models import Appointment, CalendarLink, Contact, Resource

LOCK_NOT_AVAILABLE = "55P03"


def blocked_range(start, end):
    return func.tstzrange(start, end, literal_column("'[)'"))


# `status <> 'cancelled'` is the predicate of the exclusion constraint's partial GiST index.
# Compared with this literal, not a bound parameter: a prepared statement's generic plan can
# then prove the predicate and use the index; with a parameter it scanned every appointment
# of the organization (#17).
CANCELLED: ColumnClause[str] = literal_column("'cancelled'")


_links = table(CalendarLink)


def link_blocks(link_id, resource_id) -> Exists:
    """A calendar's busy time (its link, its resource) counts only while that link blocks that
    resource: the worker stops refreshing a link's busy times when it stops blocking (or
    moves), and those left behind would otherwise block for good. One rule for booking,
    availability and the diary page."""
    return exists().where(
        _links.c.id == link_id, _links.c.resource_id == resource_id, _links.c.block
    )


def link_fresh_until(last_good_sync_at, max_staleness_minutes):
    """When a calendar link's busy times stop being good (LinkState.fresh_until): NULL for a
    link never read."""
    return last_good_sync_at + max_staleness_minutes * literal_column("interval '1 minute'")


_appointments = table(Appointment)
_contacts = table(Contact)
_resources = table(Resource)

# An appointment with its contact (for the phone) and its resource (for the name); both joins
# keep the organization, like the composite foreign keys they follow.
WITH_CONTACT_AND_RESOURCE = _appointments.join(
    _contacts,
    and_(
        _contacts.c.org_id == _appointments.c.org_id,
        _contacts.c.id == _appointments.c.contact_id,
    ),
).join(
    _resources,
    and_(
        _resources.c.org_id == _appointments.c.org_id,
        _resources.c.id == _appointments.c.resource_id,
    ),
)
