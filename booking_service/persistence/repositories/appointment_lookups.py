"""An appointment as use cases see it (AppointmentRow), and finding appointments: by id, a
contact's upcoming ones and holdings, by reference (with the caller's proof, or for staff),
row-locked where a change follows."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import (
    Boolean,
    Text,
    and_,
    bindparam,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Session

from booking_service.persistence.db import table
from booking_service.persistence.models import (
    Appointment,
    Contact,
)
from booking_service.persistence.repositories.driver import HotStatement

_appointments = table(Appointment)


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


APPOINTMENT_COLUMNS = [_appointments.c[f.name] for f in fields(AppointmentRow)]


def appointment_row(row) -> AppointmentRow:
    return AppointmentRow(*row)


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


# A contact's own appointments as every SMS reply reads them (#29), on the driver (#30).
_UPCOMING = HotStatement(
    select(*APPOINTMENT_COLUMNS)
    .where(
        _appointments.c.org_id == bindparam("p_org"),
        _appointments.c.contact_id == bindparam("p_contact"),
        _appointments.c.status == "booked",
        _appointments.c.ends_at > bindparam("p_now"),
    )
    .order_by(_appointments.c.starts_at)
    .limit(20)
)


def _locked_of_contact(key: str) -> HotStatement:
    """The contact's own appointment by `key` (bound as p_key), locked. (org_id, reference)
    and (org_id, id) are unique: one row at most, nothing to order."""
    return HotStatement(
        select(*APPOINTMENT_COLUMNS)
        .where(
            _appointments.c.org_id == bindparam("p_org"),
            _appointments.c.contact_id == bindparam("p_contact"),
            _appointments.c[key] == bindparam("p_key"),
        )
        .with_for_update()
    )


_OF_CONTACT_BY_REFERENCE = _locked_of_contact("reference")
_OF_CONTACT_BY_ID = _locked_of_contact("id")


class AppointmentLookups:
    """Reads of appointments; the base of AppointmentRepository (uow.appointments)."""

    def __init__(self, session: Session):
        self.session = session

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
            select(*APPOINTMENT_COLUMNS).where(
                _appointments.c.org_id == org_id, _appointments.c.id == appointment_id
            )
        ).first()
        return appointment_row(row) if row is not None else None

    def upcoming(self, org_id: int, contact_id: int, now: datetime) -> list[AppointmentRow]:
        """The contact's booked appointments that have not ended, soonest first."""
        rows = _UPCOMING.execute(
            self.session, {"p_org": org_id, "p_contact": contact_id, "p_now": now}
        ).all()
        return [appointment_row(row) for row in rows]

    def of_contact(
        self,
        org_id: int,
        contact_id: int,
        *,
        reference: str | None = None,
        starts_at: datetime | None = None,
        appointment_id: int | None = None,
    ) -> AppointmentRow | None:
        """The contact's own appointment by reference, start or id (booked ones first), locked.

        FOR UPDATE: a cancel and a reschedule of the same appointment run one after the other.
        """
        if starts_at is None and (reference is None) != (appointment_id is None):
            hot, key = (
                (_OF_CONTACT_BY_REFERENCE, reference)
                if reference is not None
                else (_OF_CONTACT_BY_ID, appointment_id)
            )
            params = {"p_org": org_id, "p_contact": contact_id, "p_key": key}
            row = hot.execute(self.session, params).first()
            return appointment_row(row) if row is not None else None
        stmt = select(*APPOINTMENT_COLUMNS).where(
            _appointments.c.org_id == org_id, _appointments.c.contact_id == contact_id
        )
        if reference is not None:
            stmt = stmt.where(_appointments.c.reference == reference)
        if starts_at is not None:
            stmt = stmt.where(_appointments.c.starts_at == starts_at)
        if appointment_id is not None:
            stmt = stmt.where(_appointments.c.id == appointment_id)
        stmt = stmt.order_by((_appointments.c.status == "booked").desc(), _appointments.c.id.desc())
        row = self.session.execute(stmt.limit(1).with_for_update()).first()
        return appointment_row(row) if row is not None else None

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
            select(*APPOINTMENT_COLUMNS)
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
        return appointment_row(row) if row is not None else None

    def by_reference(self, org_id: int, reference: str) -> AppointmentRow | None:
        """The organization's appointment with this reference, row-locked (staff actions)."""
        row = self.session.execute(
            select(*APPOINTMENT_COLUMNS)
            .where(_appointments.c.org_id == org_id, _appointments.c.reference == reference)
            .with_for_update(of=_appointments)
        ).first()
        return appointment_row(row) if row is not None else None
