"""uow.appointments: the booking insert (and why one was not made), cancel, mark and move.

Finding appointments (by id, by proof, a contact's holdings) is in appointment_lookups.py,
whose AppointmentRow is importable from here too.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql.elements import ColumnElement

from booking_service.persistence.db import table
from booking_service.persistence.models import (
    Appointment,
    CalendarBusy,
    CalendarLink,
    Organization,
)
from booking_service.persistence.repositories.appointment_lookups import (
    APPOINTMENT_COLUMNS,
    AppointmentLookups,
    AppointmentRow,
    appointment_row,
)
from booking_service.persistence.repositories.common import (
    CANCELLED,
    blocked_range,
    link_blocks,
    link_fresh_until,
)
from booking_service.persistence.repositories.driver import HotStatement

__all__ = ["AppointmentRepository", "AppointmentRow"]

_appointments = table(Appointment)
_organizations = table(Organization)


# Column -> parameter of an appointment insert (the status is always "booked").
_INSERTED = {
    "org_id": "p_org",
    "contact_id": "p_contact",
    "resource_id": "p_resource",
    "reference": "p_reference",
    "starts_at": "p_starts",
    "ends_at": "p_ends",
    "blocked_until": "p_blocked",
    "service": "p_service",
    "notes": "p_notes",
    "name": "p_name",
    "email": "p_email",
    "vapi_call_id": "p_call",
    "tool_call_id": "p_tool_call",
    "unconfirmed": "p_unconfirmed",
}
_INSERT_APPOINTMENT = HotStatement(
    insert(_appointments)
    .values(status="booked", **{column: bindparam(p) for column, p in _INSERTED.items()})
    .on_conflict_do_nothing()
    .returning(*APPOINTMENT_COLUMNS)
)
# The same insert, made only while the organization's config_version is the one given and
# the resource's calendars allow it, as of the insert's own snapshot: a booking decided on
# opening hours kept for that version (use_cases/openings.cached_openings) is not made on
# hours changed since, however long the request waited for locks before it, nor over a time
# a blocking calendar says is busy, nor while such a calendar is stale (its policy, and the
# `unconfirmed` mark, are openings_at's to apply). Nothing inserted: see why_not_inserted.
_busy = table(CalendarBusy)
_links = table(CalendarLink)


def _calendar_says_no(org, resource, starts_at, blocked_until, now):
    """A blocking calendar of the resource is busy over [starts_at, blocked_until) or stale
    at `now` (LinkState.stale_at): the rules openings_at applies to calendars."""
    busy = exists().where(
        _busy.c.org_id == org,
        _busy.c.resource_id == resource,
        _busy.c.starts_at < blocked_until,
        _busy.c.ends_at > starts_at,
        link_blocks(_busy.c.link_id, _busy.c.resource_id),
    )
    fresh_until = link_fresh_until(_links.c.last_good_sync_at, _links.c.max_staleness_minutes)
    stale = exists().where(
        _links.c.org_id == org,
        _links.c.resource_id == resource,
        _links.c.block,
        or_(fresh_until.is_(None), fresh_until <= now),
    )
    return or_(busy, stale)


_INSERT_APPOINTMENT_AT_VERSION = HotStatement(
    insert(_appointments)
    .from_select(
        ["status", *_INSERTED],
        select(
            literal("booked", _appointments.c.status.type),
            *(bindparam(p, type_=_appointments.c[column].type) for column, p in _INSERTED.items()),
        ).where(
            exists().where(
                _organizations.c.id == bindparam("p_org", type_=BigInteger),
                _organizations.c.config_version == bindparam("p_version", type_=BigInteger),
            ),
            ~_calendar_says_no(
                bindparam("p_org", type_=BigInteger),
                bindparam("p_resource", type_=BigInteger),
                bindparam("p_starts", type_=_appointments.c.starts_at.type),
                bindparam("p_blocked", type_=_appointments.c.blocked_until.type),
                bindparam("p_now", type_=_appointments.c.starts_at.type),
            ),
        ),
    )
    .on_conflict_do_nothing()
    .returning(*APPOINTMENT_COLUMNS)
)


# A caller's "1" by text (#29), on the driver as every SMS reply's statements are (#30).
_CONFIRM = HotStatement(
    update(_appointments)
    .where(
        _appointments.c.org_id == bindparam("p_org"),
        _appointments.c.id == bindparam("p_id"),
        _appointments.c.status == "booked",
        _appointments.c.confirmed_at.is_(None),
    )
    .values(confirmed_at=func.now())
    .returning(_appointments.c.id)
)


def _why_not(at_version: bool) -> HotStatement:
    """Why an insert made nothing (AppointmentRepository.why_not_inserted), as of a statement
    run after it: the reference used, a booked appointment overlapping, and `at_version`, the
    organization's version changed or a blocking calendar busy or stale."""
    org = bindparam("p_org", type_=BigInteger)
    resource = bindparam("p_resource", type_=BigInteger)
    starts = bindparam("p_starts", type_=_appointments.c.starts_at.type)
    blocked = bindparam("p_blocked", type_=_appointments.c.blocked_until.type)
    reference_used = exists().where(
        _appointments.c.org_id == org,
        _appointments.c.reference == bindparam("p_reference", type_=_appointments.c.reference.type),
    )
    overlap = exists().where(
        _appointments.c.org_id == org,
        _appointments.c.resource_id == resource,
        _appointments.c.status != CANCELLED,
        blocked_range(_appointments.c.starts_at, _appointments.c.blocked_until).op("&&")(
            blocked_range(starts, blocked)
        ),
    )
    stale: ColumnElement[bool] = literal(False)
    calendar: ColumnElement[bool] = literal(False)
    if at_version:
        stale = ~exists().where(
            _organizations.c.id == org,
            _organizations.c.config_version == bindparam("p_version", type_=BigInteger),
        )
        now = bindparam("p_now", type_=_appointments.c.starts_at.type)
        calendar = _calendar_says_no(org, resource, starts, blocked, now)
    return HotStatement(
        select(
            reference_used.label("reference_used"),
            overlap.label("overlap"),
            stale.label("stale"),
            calendar.label("calendar"),
        )
    )


_WHY_NOT = _why_not(at_version=False)
_WHY_NOT_AT_VERSION = _why_not(at_version=True)


def _insert_params(values: dict) -> dict:
    """The insert's parameters from its arguments (by column name)."""
    return {p: values[column] for column, p in _INSERTED.items()}


class AppointmentRepository(AppointmentLookups):
    """Appointments: inserted with a reference unique per organization."""

    def insert(
        self,
        *,
        org_id: int,
        contact_id: int,
        resource_id: int,
        reference: str,
        starts_at: datetime,
        ends_at: datetime,
        blocked_until: datetime,
        service: str | None,
        notes: str | None,
        name: str | None,
        email: str | None,
        vapi_call_id: str | None,
        tool_call_id: str | None,
        unconfirmed: bool = False,
    ) -> AppointmentRow | None:
        """Insert a booked appointment; None when it conflicts (see `why_not_inserted`).

        No SAVEPOINT is needed: ON CONFLICT DO NOTHING, without a target, covers both the
        exclusion constraint (the resource is taken at that time, also by a concurrent
        transaction, which it waits for) and the unique reference. Only DO NOTHING accepts an
        exclusion constraint as arbiter, and one statement can name only one arbiter, hence no
        named target here; the start-up schema check asserts both constraints exist.
        """
        values = _insert_params(locals())
        row = _INSERT_APPOINTMENT.execute(self.session, values).first()
        return appointment_row(row) if row is not None else None

    def insert_at_version(self, version: int, now: datetime, **values) -> AppointmentRow | None:
        """`insert`, made only while the organization's config_version is `version` and no
        blocking calendar of the resource is busy then or stale at `now`; None when one of
        those holds, or when the insert conflicts (see `why_not_inserted`)."""
        params = {**_insert_params(values), "p_version": version, "p_now": now}
        row = _INSERT_APPOINTMENT_AT_VERSION.execute(self.session, params).first()
        return appointment_row(row) if row is not None else None

    def why_not_inserted(
        self,
        org_id: int,
        reference: str,
        resource_id: int,
        starts_at: datetime,
        blocked_until: datetime,
        version: int | None = None,
        now: datetime | None = None,
    ) -> str | None:
        """After `insert` returned nothing: "reference" when the reference is used, "taken"
        when a booked appointment overlaps on the resource; after `insert_at_version`,
        "stale" (before "taken") when the organization's version is no longer `version` and
        "calendar" when a blocking calendar is busy then or stale at `now`; else None
        (another constraint). One hot statement: every refusal asks it (#30)."""
        params = {
            "p_org": org_id,
            "p_reference": reference,
            "p_resource": resource_id,
            "p_starts": starts_at,
            "p_blocked": blocked_until,
        }
        if version is not None and now is not None:
            params.update(p_version=version, p_now=now)
            row = _WHY_NOT_AT_VERSION.execute(self.session, params).one()
        else:
            row = _WHY_NOT.execute(self.session, params).one()
        if row.reference_used:
            return "reference"
        if row.stale:
            # Before "taken": a refusal decided on hours that no longer hold would be wrong
            # (use_cases/booking.py answers "taken" at the current version without a diary read).
            return "stale"
        if row.overlap:
            return "taken"
        return "calendar" if row.calendar else None

    def cancel(self, org_id: int, appointment_id: int, reason: str | None) -> AppointmentRow:
        """Mark it cancelled (never a delete) and return it as it is now."""
        return self._update(
            org_id,
            appointment_id,
            status="cancelled",
            cancelled_at=func.now(),
            cancel_reason=reason,
            sequence=_appointments.c.sequence + 1,
        )

    def confirm(self, org_id: int, appointment_id: int) -> bool:
        """Record the caller's confirmation of a booked appointment; False when it was
        already confirmed (or is no longer booked): a repeated reply changes nothing."""
        row = _CONFIRM.execute(self.session, {"p_org": org_id, "p_id": appointment_id}).first()
        return row is not None

    def set_status(self, org_id: int, appointment_id: int, status: str) -> AppointmentRow:
        """Record how it went (completed, no_show)."""
        return self._update(org_id, appointment_id, status=status)

    def move(
        self,
        org_id: int,
        appointment_id: int,
        *,
        resource_id: int,
        starts_at: datetime,
        ends_at: datetime,
        blocked_until: datetime,
        unconfirmed: bool = False,
    ) -> AppointmentRow:
        """Move in place (same row, same reference); may raise the exclusion violation."""
        return self._update(
            org_id,
            appointment_id,
            resource_id=resource_id,
            starts_at=starts_at,
            ends_at=ends_at,
            blocked_until=blocked_until,
            rescheduled_at=func.now(),
            sequence=_appointments.c.sequence + 1,
            unconfirmed=unconfirmed,
        )

    def _update(self, org_id: int, appointment_id: int, **values) -> AppointmentRow:
        row = self.session.execute(
            update(_appointments)
            .where(_appointments.c.org_id == org_id, _appointments.c.id == appointment_id)
            .values(**values)
            .returning(*APPOINTMENT_COLUMNS)
        ).one()
        return appointment_row(row)
