"""Appointments: the booking insert, holdings of a contact, lookups by proof, cancel and move."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Text,
    and_,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from booking_service.persistence.db import table
from booking_service.persistence.models import (
    Appointment,
    CalendarBusy,
    CalendarLink,
    Contact,
    Organization,
)
from booking_service.persistence.repositories.common import (
    CANCELLED,
    blocked_range,
    link_blocks,
    link_fresh_until,
)
from booking_service.persistence.repositories.driver import HotStatement

_appointments = table(Appointment)
_organizations = table(Organization)


@dataclass(frozen=True)
class AppointmentRow:
    """An appointment as use cases see it. Notes are left out on purpose: what a caller typed
    for staff is never handed to code that answers callers."""

    id: int
    org_id: int
    contact_id: int
    resource_id: int
    reference: str
    starts_at: datetime
    ends_at: datetime
    status: str
    service: str | None
    name: str | None
    email: str | None


_COLUMNS = [_appointments.c[f.name] for f in fields(AppointmentRow)]


def _appointment(row) -> AppointmentRow:
    return AppointmentRow(*row)


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
    .returning(*_COLUMNS)
)
# The same insert, made only while the organization's config_version is the one given and
# the resource's calendars allow it, as of the insert's own snapshot: a booking decided on
# opening hours kept for that version (use_cases/openings.cached_openings) is not made on
# hours changed since, however long the request waited for locks before it, nor over a time
# a blocking calendar says is busy, nor while such a calendar is stale (its policy, and the
# `unconfirmed` mark, are check_start's to apply). Nothing inserted: see why_not_inserted.
_busy = table(CalendarBusy)
_links = table(CalendarLink)


def _calendar_says_no(org, resource, starts_at, blocked_until, now):
    """A blocking calendar of the resource is busy over [starts_at, blocked_until) or stale
    at `now` (LinkState.stale_at): the rules check_start applies to calendars."""
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
    .returning(*_COLUMNS)
)


_HOLDINGS = select(
    func.count().label("upcoming"),
    # array_agg(...)[1]: the first matching id, in the same pass as the count.
    func.array_agg(_appointments.c.id)
    .filter(
        and_(
            _appointments.c.starts_at == bindparam("p_starts"),
            or_(
                bindparam("p_any_call", type_=Boolean),
                _appointments.c.vapi_call_id == bindparam("p_call", type_=Text),
            ),
        )
    )[1]
    .label("existing_id"),
).where(
    _appointments.c.org_id == bindparam("p_org"),
    _appointments.c.contact_id == bindparam("p_contact"),
    _appointments.c.status == "booked",
    _appointments.c.ends_at > bindparam("p_now"),
)


def _insert_params(values: dict) -> dict:
    """The insert's parameters from its arguments (by column name)."""
    return {p: values[column] for column, p in _INSERTED.items()}


class AppointmentRepository:
    """Appointments: inserted with a reference unique per organization."""

    def __init__(self, session: Session):
        self.session = session

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
        return _appointment(row) if row is not None else None

    def insert_at_version(self, version: int, now: datetime, **values) -> AppointmentRow | None:
        """`insert`, made only while the organization's config_version is `version` and no
        blocking calendar of the resource is busy then or stale at `now`; None when one of
        those holds, or when the insert conflicts (see `why_not_inserted`)."""
        params = {**_insert_params(values), "p_version": version, "p_now": now}
        row = _INSERT_APPOINTMENT_AT_VERSION.execute(self.session, params).first()
        return _appointment(row) if row is not None else None

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
        "stale" when the organization's version is no longer `version` and "calendar" when
        a blocking calendar is busy then or stale at `now`; else None (another
        constraint)."""
        reference_used = exists().where(
            Appointment.org_id == org_id, Appointment.reference == reference
        )
        overlap = exists().where(
            Appointment.org_id == org_id,
            Appointment.resource_id == resource_id,
            Appointment.status != CANCELLED,
            blocked_range(Appointment.starts_at, Appointment.blocked_until).op("&&")(
                blocked_range(starts_at, blocked_until)
            ),
        )
        stale: ColumnElement[bool] = literal(False)
        calendar: ColumnElement[bool] = literal(False)
        if version is not None and now is not None:
            stale = ~exists().where(
                _organizations.c.id == org_id, _organizations.c.config_version == version
            )
            calendar = _calendar_says_no(org_id, resource_id, starts_at, blocked_until, now)
        row = self.session.execute(
            select(
                reference_used.label("reference_used"),
                overlap.label("overlap"),
                stale.label("stale"),
                calendar.label("calendar"),
            )
        ).one()
        if row.reference_used:
            return "reference"
        if row.overlap:
            return "taken"
        return "stale" if row.stale else "calendar" if row.calendar else None

    def holdings(
        self,
        org_id: int,
        contact_id: int,
        *,
        now: datetime,
        starts_at: datetime,
        vapi_call_id: str | None,
        any_call: bool,
    ) -> tuple[int, int | None]:
        """How many booked appointments the contact holds that have not ended, and the id of
        the one starting exactly at `starts_at` that this request may be given back: any of
        them (`any_call`: the verified caller's own), else only one booked in the same VAPI
        call. One statement; call it with the contact's row locked."""
        row = self.session.execute(
            _HOLDINGS,
            {
                "p_org": org_id,
                "p_contact": contact_id,
                "p_now": now,
                "p_starts": starts_at,
                "p_call": vapi_call_id,
                "p_any_call": any_call,
            },
        ).one()
        return row.upcoming, row.existing_id

    def get(self, org_id: int, appointment_id: int) -> AppointmentRow | None:
        row = self.session.execute(
            select(*_COLUMNS).where(
                _appointments.c.org_id == org_id, _appointments.c.id == appointment_id
            )
        ).first()
        return _appointment(row) if row is not None else None

    def upcoming(self, org_id: int, contact_id: int, now: datetime) -> list[AppointmentRow]:
        """The contact's booked appointments that have not ended, soonest first."""
        rows = self.session.execute(
            select(*_COLUMNS)
            .where(
                _appointments.c.org_id == org_id,
                _appointments.c.contact_id == contact_id,
                _appointments.c.status == "booked",
                _appointments.c.ends_at > now,
            )
            .order_by(_appointments.c.starts_at)
            .limit(20)
        )
        return [_appointment(row) for row in rows]

    def of_contact(
        self,
        org_id: int,
        contact_id: int,
        *,
        reference: str | None = None,
        starts_at: datetime | None = None,
    ) -> AppointmentRow | None:
        """The contact's own appointment by reference or start (booked ones first), locked.

        FOR UPDATE: a cancel and a reschedule of the same appointment run one after the other.
        """
        stmt = select(*_COLUMNS).where(
            _appointments.c.org_id == org_id, _appointments.c.contact_id == contact_id
        )
        if reference is not None:
            stmt = stmt.where(_appointments.c.reference == reference)
        if starts_at is not None:
            stmt = stmt.where(_appointments.c.starts_at == starts_at)
        stmt = stmt.order_by((_appointments.c.status == "booked").desc(), _appointments.c.id.desc())
        row = self.session.execute(stmt.limit(1).with_for_update()).first()
        return _appointment(row) if row is not None else None

    def by_reference_and_proof(
        self,
        org_id: int,
        reference: str,
        *,
        phone: str | None,
        email: str | None,
        starts_at: datetime | None = None,
        lock: bool = False,
    ) -> AppointmentRow | None:
        """The appointment with this reference, only if it was booked with this phone (its
        contact's) or this email (the booking's); with `lock`, FOR UPDATE."""
        proofs = []
        if phone is not None:
            proofs.append(Contact.phone == phone)
        if email is not None:
            proofs.append(_appointments.c.email == email)
        if not proofs:
            return None
        stmt = (
            select(*_COLUMNS)
            .join(
                Contact,
                and_(
                    Contact.org_id == _appointments.c.org_id,
                    Contact.id == _appointments.c.contact_id,
                ),
            )
            .where(
                _appointments.c.org_id == org_id,
                _appointments.c.reference == reference,
                or_(*proofs),
            )
        )
        if starts_at is not None:
            stmt = stmt.where(_appointments.c.starts_at == starts_at)
        if lock:
            stmt = stmt.with_for_update(of=_appointments)
        row = self.session.execute(stmt).first()
        return _appointment(row) if row is not None else None

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

    def by_reference(self, org_id: int, reference: str) -> AppointmentRow | None:
        """The organization's appointment with this reference, row-locked (staff actions)."""
        row = self.session.execute(
            select(*_COLUMNS)
            .where(_appointments.c.org_id == org_id, _appointments.c.reference == reference)
            .with_for_update(of=_appointments)
        ).first()
        return _appointment(row) if row is not None else None

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
            .returning(*_COLUMNS)
        ).one()
        return _appointment(row)
