"""Repositories: every query lives here. They execute, never commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Row,
    SmallInteger,
    Text,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from booking_service.errors import LockTimeout
from booking_service.models import (
    UQ_CONTACTS_ORG_EMAIL_PHONELESS,
    UQ_CONTACTS_ORG_PHONE,
    UQ_SERVICES_ORG_NAME,
    UQ_TOOL_CALLS_ORG_TOOL_CALL,
    UQ_WEBHOOK_SIGNATURES,
    Appointment,
    Contact,
    Organization,
    Resource,
    ScheduleException,
    Service,
    ToolCall,
    WebhookSignature,
    WorkingHours,
)

LOCK_NOT_AVAILABLE = "55P03"


@dataclass(frozen=True)
class ContactRow:
    """The fields of a contact that use cases need, as returned by a statement."""

    id: int
    name: str | None
    phone: str | None
    email: str | None


_CONTACT_COLUMNS = (Contact.id, Contact.name, Contact.phone, Contact.email)


def _contact(row) -> ContactRow:
    return ContactRow(id=row.id, name=row.name, phone=row.phone, email=row.email)


@dataclass(frozen=True)
class ResourceRow:
    """A bookable resource (person, chair, room) as the booking use cases need it."""

    id: int
    name: str
    name_key: str


@dataclass(frozen=True)
class ServiceRow:
    """A service the organization offers, with its default length."""

    name: str
    name_key: str
    duration_minutes: int


@dataclass(frozen=True)
class ScheduleRows:
    """Rows for the scheduler: hours (resource_id, weekday, opens, closes), exceptions
    (resource_id, day, opens, closes; no opens = closed) and busy ranges (resource_id,
    starts_at, blocked_until)."""

    hours: list
    exceptions: list
    busy: list


_ORGANIZATION = select(Organization.__table__).where(Organization.id == bindparam("p_id"))


class OrganizationRepository:
    """Organizations and their webhook secret hashes."""

    def __init__(self, session: Session):
        self.session = session

    def get(self, org_id: int) -> Row | None:
        """The organization's row (read-only; every request authenticates with it)."""
        return self.session.execute(_ORGANIZATION, {"p_id": org_id}).first()

    def add(self, org: Organization) -> Organization:
        self.session.add(org)
        self.session.flush()
        self.session.refresh(org)  # server defaults (booking rules) become visible
        return org

    def list_all(self) -> list[Organization]:
        return list(self.session.scalars(select(Organization).order_by(Organization.id)))

    def update_rules(self, org_id: int, values: dict[str, int]) -> Organization | None:
        """Change booking rules (slot/notice/horizon/buffer); None when there is no such org."""
        org = self.session.get(Organization, org_id)
        if org is None:
            return None
        for key, value in values.items():
            setattr(org, key, value)
        self.session.flush()
        return org

    def remember_signature(self, org_id: int, signature: str, *, older_than: datetime) -> bool:
        """Record an accepted HMAC signature; False if it was seen before (a replay).

        Signatures older than `older_than` are forgotten: their timestamps can no longer pass.
        """
        self.session.execute(
            WebhookSignature.__table__.delete().where(WebhookSignature.seen_at < older_than)
        )
        stmt = (
            insert(WebhookSignature)
            .values(org_id=org_id, signature=signature)
            .on_conflict_do_nothing(constraint=UQ_WEBHOOK_SIGNATURES)
            .returning(WebhookSignature.id)
        )
        return self.session.execute(stmt).first() is not None

    def set_hmac_key(self, org_id: int, key: str | None) -> bool:
        result = self.session.execute(
            update(Organization)
            .where(Organization.id == org_id)
            .values(hmac_secret=key)
            .returning(Organization.id)
        )
        return result.first() is not None

    def set_secret_hash(
        self, org_id: int, secret_hash: str, *, keep_previous_until: datetime | None = None
    ) -> bool:
        """Replace the secret hash; with `keep_previous_until` the old one stays valid till then."""
        values: dict = {"secret_hash": secret_hash}
        if keep_previous_until is not None:
            values["previous_secret_hash"] = Organization.secret_hash
            values["previous_secret_expires_at"] = keep_previous_until
        else:
            values["previous_secret_hash"] = None
            values["previous_secret_expires_at"] = None
        result = self.session.execute(
            update(Organization)
            .where(Organization.id == org_id)
            .values(**values)
            .returning(Organization.id)
        )
        return result.first() is not None


# The statements every booking runs are built once (building one costs about as much as running
# it); the values are bound per call. Bind names must differ from the column names.
_contacts = Contact.__table__
_new_contact = insert(_contacts).values(
    org_id=bindparam("p_org"),
    phone=bindparam("p_phone"),
    name=bindparam("p_name"),
    email=bindparam("p_email"),
)
# Only the contact's own verified caller changes its name and email; anyone else's booking
# for this number only gives a nameless contact a name. A contact's email (where messages may
# go) is never written by anybody else, not even into a new contact: the booking keeps the
# email it was made with. DO UPDATE runs either way: it locks the row until commit, so one
# booking decision per contact is made at a time.
_OWNER = bindparam("p_owner", type_=Boolean)
_UPSERT_CONTACT = _new_contact.on_conflict_do_update(
    constraint=UQ_CONTACTS_ORG_PHONE,
    set_={
        "name": case(
            (_OWNER, func.coalesce(_new_contact.excluded.name, _contacts.c.name)),
            else_=func.coalesce(_contacts.c.name, _new_contact.excluded.name),
        ),
        "email": case(
            (_OWNER, func.coalesce(_new_contact.excluded.email, _contacts.c.email)),
            else_=_contacts.c.email,
        ),
        # Python-side onupdate is not applied to ON CONFLICT DO UPDATE.
        "updated_at": case((_OWNER, func.now()), else_=_contacts.c.updated_at),
    },
).returning(
    _contacts.c.id,
    _contacts.c.name,
    _contacts.c.phone,
    _contacts.c.email,
    literal_column("(xmax = 0)").label("inserted"),
)


class ContactRepository:
    """Contact lookups and the race-safe writes behind contact resolution."""

    def __init__(self, session: Session):
        self.session = session

    def upsert_by_phone(
        self, org_id: int, phone: str, name: str | None, email: str | None, *, owner: bool
    ) -> tuple[ContactRow, bool]:
        """Insert the contact with this phone, or lock the existing one, in ONE statement.

        `owner`: its own verified caller books for their own number, so the name and email
        given replace the stored ones (absent values never erase stored ones). Anybody else's
        booking gives a new or nameless contact the name given, and never an email. Returns
        the row and whether it was inserted. Keyed on the named constraint, so a missing
        constraint fails loudly instead of silently creating duplicates.
        """
        values = {
            "p_org": org_id,
            "p_phone": phone,
            "p_name": name,
            "p_email": email if owner else None,
            "p_owner": owner,
        }
        row = self.session.execute(_UPSERT_CONTACT, values).one()
        return _contact(row), bool(row.inserted)

    def find_by_phone(self, org_id: int, phone: str) -> ContactRow | None:
        row = self.session.execute(
            select(*_CONTACT_COLUMNS).where(Contact.org_id == org_id, Contact.phone == phone)
        ).first()
        return _contact(row) if row else None

    def find_phoneless_by_email(self, org_id: int, email: str) -> ContactRow | None:
        row = self.session.execute(
            select(*_CONTACT_COLUMNS).where(
                Contact.org_id == org_id, Contact.email == email, Contact.phone.is_(None)
            )
        ).first()
        return _contact(row) if row else None

    def lock(self, org_id: int, contact_id: int) -> None:
        """Hold the contact's row until commit: one booking decision per caller at a time."""
        self.session.execute(
            select(Contact.id)
            .where(Contact.org_id == org_id, Contact.id == contact_id)
            .with_for_update()
        )

    def fill_name(self, org_id: int, contact_id: int, name: str) -> None:
        """Give a contact that has no name this one (a stored name is never replaced)."""
        self.session.execute(
            update(Contact)
            .where(Contact.org_id == org_id, Contact.id == contact_id, Contact.name.is_(None))
            .values(name=name, updated_at=func.now())
        )

    def insert_phoneless(self, org_id: int, email: str, name: str | None) -> ContactRow:
        stmt = (
            insert(Contact)
            .values(org_id=org_id, email=email, name=name)
            .returning(*_CONTACT_COLUMNS)
        )
        return _contact(self.session.execute(stmt).one())


_appointments = Appointment.__table__
_INSERT_APPOINTMENT = (
    insert(_appointments)
    .values(
        org_id=bindparam("p_org"),
        contact_id=bindparam("p_contact"),
        resource_id=bindparam("p_resource"),
        reference=bindparam("p_reference"),
        starts_at=bindparam("p_starts"),
        ends_at=bindparam("p_ends"),
        blocked_until=bindparam("p_blocked"),
        status="booked",
        service=bindparam("p_service"),
        notes=bindparam("p_notes"),
        name=bindparam("p_name"),
        email=bindparam("p_email"),
        vapi_call_id=bindparam("p_call"),
        tool_call_id=bindparam("p_tool_call"),
    )
    .on_conflict_do_nothing()
    # What a booking answer needs (a Row, or an Appointment: the same attributes).
    .returning(
        _appointments.c.id,
        _appointments.c.reference,
        _appointments.c.resource_id,
        _appointments.c.starts_at,
        _appointments.c.ends_at,
        _appointments.c.service,
        _appointments.c.name,
    )
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
    ) -> Row | None:
        """Insert a booked appointment; None when it conflicts (see `why_not_inserted`).

        No SAVEPOINT is needed: ON CONFLICT DO NOTHING, without a target, covers both the
        exclusion constraint (the resource is taken at that time, also by a concurrent
        transaction, which it waits for) and the unique reference. Only DO NOTHING accepts an
        exclusion constraint as arbiter, and one statement can name only one arbiter, hence no
        named target here; the start-up schema check asserts both constraints exist.
        """
        values = {
            "p_org": org_id,
            "p_contact": contact_id,
            "p_resource": resource_id,
            "p_reference": reference,
            "p_starts": starts_at,
            "p_ends": ends_at,
            "p_blocked": blocked_until,
            "p_service": service,
            "p_notes": notes,
            "p_name": name,
            "p_email": email,
            "p_call": vapi_call_id,
            "p_tool_call": tool_call_id,
        }
        return self.session.execute(_INSERT_APPOINTMENT, values).first()

    def why_not_inserted(
        self,
        org_id: int,
        reference: str,
        resource_id: int,
        starts_at: datetime,
        blocked_until: datetime,
    ) -> str | None:
        """After `insert` returned nothing: "reference" when the reference is used, "taken"
        when a booked appointment overlaps on the resource, else None (another constraint)."""
        reference_used = exists().where(
            Appointment.org_id == org_id, Appointment.reference == reference
        )
        overlap = exists().where(
            Appointment.org_id == org_id,
            Appointment.resource_id == resource_id,
            Appointment.status == "booked",
            _blocked_range(Appointment.starts_at, Appointment.blocked_until).op("&&")(
                _blocked_range(starts_at, blocked_until)
            ),
        )
        row = self.session.execute(
            select(reference_used.label("reference_used"), overlap.label("overlap"))
        ).one()
        return "reference" if row.reference_used else "taken" if row.overlap else None

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

    def get(self, org_id: int, appointment_id: int) -> Appointment | None:
        return self.session.scalars(
            select(Appointment).where(
                Appointment.org_id == org_id, Appointment.id == appointment_id
            )
        ).first()

    def upcoming(self, org_id: int, contact_id: int, now: datetime) -> list[Appointment]:
        """The contact's booked appointments that have not ended, soonest first."""
        return list(
            self.session.scalars(
                select(Appointment)
                .where(
                    Appointment.org_id == org_id,
                    Appointment.contact_id == contact_id,
                    Appointment.status == "booked",
                    Appointment.ends_at > now,
                )
                .order_by(Appointment.starts_at)
                .limit(20)
            )
        )

    def of_contact(
        self,
        org_id: int,
        contact_id: int,
        *,
        reference: str | None = None,
        starts_at: datetime | None = None,
    ) -> Appointment | None:
        """The contact's own appointment by reference or start (booked ones first), locked.

        FOR UPDATE: a cancel and a reschedule of the same appointment run one after the other.
        """
        stmt = select(Appointment).where(
            Appointment.org_id == org_id, Appointment.contact_id == contact_id
        )
        if reference is not None:
            stmt = stmt.where(Appointment.reference == reference)
        if starts_at is not None:
            stmt = stmt.where(Appointment.starts_at == starts_at)
        stmt = stmt.order_by((Appointment.status == "booked").desc(), Appointment.id.desc())
        return self.session.scalars(stmt.limit(1).with_for_update()).first()

    def by_reference_and_proof(
        self,
        org_id: int,
        reference: str,
        *,
        phone: str | None,
        email: str | None,
        starts_at: datetime | None = None,
        lock: bool = False,
    ) -> Appointment | None:
        """The appointment with this reference, only if it was booked with this phone (its
        contact's) or this email (the booking's); with `lock`, FOR UPDATE."""
        proofs = []
        if phone is not None:
            proofs.append(Contact.phone == phone)
        if email is not None:
            proofs.append(Appointment.email == email)
        if not proofs:
            return None
        stmt = (
            select(Appointment)
            .join(
                Contact,
                and_(Contact.org_id == Appointment.org_id, Contact.id == Appointment.contact_id),
            )
            .where(
                Appointment.org_id == org_id,
                Appointment.reference == reference,
                or_(*proofs),
            )
        )
        if starts_at is not None:
            stmt = stmt.where(Appointment.starts_at == starts_at)
        if lock:
            stmt = stmt.with_for_update(of=Appointment)
        return self.session.scalars(stmt).first()

    def cancel(self, appointment: Appointment, reason: str | None) -> None:
        appointment.status = "cancelled"
        appointment.cancelled_at = func.now()
        appointment.cancel_reason = reason
        self.session.flush()

    def move(
        self,
        appointment: Appointment,
        *,
        resource_id: int,
        starts_at: datetime,
        ends_at: datetime,
        blocked_until: datetime,
    ) -> None:
        """Move in place (same row, same reference); may raise the exclusion violation."""
        appointment.resource_id = resource_id
        appointment.starts_at = starts_at
        appointment.ends_at = ends_at
        appointment.blocked_until = blocked_until
        appointment.rescheduled_at = func.now()
        self.session.flush()


def _blocked_range(start, end):
    return func.tstzrange(start, end, literal_column("'[)'"))


def _catalogue_statement():
    resources = select(
        literal("r").label("kind"),
        func.row_number().over(order_by=Resource.id).label("position"),
        Resource.id,
        Resource.name,
        Resource.name_key,
        cast(null(), SmallInteger).label("minutes"),
    ).where(Resource.org_id == bindparam("p_org"))
    services = select(
        literal("s"),
        func.row_number().over(order_by=Service.name),
        Service.id,
        Service.name,
        Service.name_key,
        Service.duration_minutes,
    ).where(Service.org_id == bindparam("p_org"))
    return union_all(resources, services).order_by(text("kind"), text("position"))


def _schedule_statement():
    org = bindparam("p_org")
    resources = bindparam("p_resources", expanding=True)
    no_time = cast(null(), WorkingHours.opens.type)
    no_moment = cast(null(), DateTime(timezone=True))
    hours = select(
        literal("h").label("kind"),
        WorkingHours.resource_id,
        WorkingHours.weekday,
        cast(null(), Date).label("day"),
        WorkingHours.opens,
        WorkingHours.closes,
        no_moment.label("starts_at"),
        no_moment.label("blocked_until"),
    ).where(WorkingHours.org_id == org, WorkingHours.resource_id.in_(resources))
    exceptions = select(
        literal("x"),
        ScheduleException.resource_id,
        cast(null(), SmallInteger),
        ScheduleException.day,
        ScheduleException.opens,
        ScheduleException.closes,
        no_moment,
        no_moment,
    ).where(
        ScheduleException.org_id == org,
        ScheduleException.resource_id.in_(resources),
        ScheduleException.day.between(bindparam("p_first"), bindparam("p_last")),
    )
    busy = select(
        literal("b"),
        Appointment.resource_id,
        cast(null(), SmallInteger),
        cast(null(), Date),
        no_time,
        no_time,
        Appointment.starts_at,
        Appointment.blocked_until,
    ).where(
        Appointment.org_id == org,
        Appointment.resource_id.in_(resources),
        Appointment.status == "booked",
        # Spelled as the exclusion constraint's indexed expression (the bounds literal, not a
        # parameter), so its GiST index finds the overlaps, however long the history.
        _blocked_range(Appointment.starts_at, Appointment.blocked_until).op("&&")(
            _blocked_range(bindparam("p_busy_from"), bindparam("p_busy_to"))
        ),
        Appointment.id != bindparam("p_exclude"),
    )
    return union_all(hours, exceptions, busy)


_CATALOGUE = _catalogue_statement()
_SCHEDULE = _schedule_statement()


class ScheduleRepository:
    """Resources, their weekly hours and dated exceptions, busy ranges, and services."""

    def __init__(self, session: Session):
        self.session = session

    def resources(self, org_id: int) -> list[Resource]:
        return list(
            self.session.scalars(
                select(Resource).where(Resource.org_id == org_id).order_by(Resource.id)
            )
        )

    def resource(self, resource_id: int) -> Resource | None:
        return self.session.get(Resource, resource_id)

    def add_resource(self, org_id: int, name: str, name_key: str) -> Resource:
        resource = Resource(org_id=org_id, name=name, name_key=name_key)
        self.session.add(resource)
        self.session.flush()
        return resource

    def add_hours(self, resource: Resource, weekday: int, opens: time, closes: time) -> None:
        self.session.add(
            WorkingHours(
                org_id=resource.org_id,
                resource_id=resource.id,
                weekday=weekday,
                opens=opens,
                closes=closes,
            )
        )

    def set_exception(self, resource: Resource, day: date, ranges: list[tuple[time, time]]) -> None:
        """Replace the exceptions of `day`: no ranges means closed all day."""
        self.session.execute(
            ScheduleException.__table__.delete().where(
                ScheduleException.resource_id == resource.id, ScheduleException.day == day
            )
        )
        for opens, closes in ranges or [(None, None)]:
            self.session.add(
                ScheduleException(
                    org_id=resource.org_id,
                    resource_id=resource.id,
                    day=day,
                    opens=opens,
                    closes=closes,
                )
            )
        self.session.flush()

    def catalogue(self, org_id: int) -> tuple[list[ResourceRow], list[ServiceRow]]:
        """The organization's resources (by id) and services (by name), in one round trip."""
        rows = self.session.execute(_CATALOGUE, {"p_org": org_id}).all()
        return (
            [ResourceRow(r.id, r.name, r.name_key) for r in rows if r.kind == "r"],
            [ServiceRow(r.name, r.name_key, r.minutes) for r in rows if r.kind == "s"],
        )

    def schedule(
        self,
        org_id: int,
        resource_ids: list[int],
        first: date,
        last: date,
        busy_from: datetime,
        busy_to: datetime,
        *,
        exclude_id: int | None = None,
    ) -> ScheduleRows:
        """Weekly hours, the exceptions dated first..last, and the booked ranges overlapping
        [busy_from, busy_to) of these resources (except `exclude_id`), in one round trip."""
        rows = self.session.execute(
            _SCHEDULE,
            {
                "p_org": org_id,
                "p_resources": resource_ids,
                "p_first": first,
                "p_last": last,
                "p_busy_from": busy_from,
                "p_busy_to": busy_to,
                "p_exclude": exclude_id if exclude_id is not None else 0,  # ids start at 1
            },
        ).all()
        return ScheduleRows(
            hours=sorted((r for r in rows if r.kind == "h"), key=lambda r: r.opens),
            exceptions=[r for r in rows if r.kind == "x"],
            busy=[r for r in rows if r.kind == "b"],
        )

    def weekly_hours(self, org_id: int, resource_ids: list[int]) -> list:
        return self.session.execute(
            select(
                WorkingHours.resource_id,
                WorkingHours.weekday,
                WorkingHours.opens,
                WorkingHours.closes,
            )
            .where(WorkingHours.org_id == org_id, WorkingHours.resource_id.in_(resource_ids))
            .order_by(WorkingHours.opens)
        ).all()

    def upsert_service(self, org_id: int, name: str, name_key: str, minutes: int) -> Service:
        stmt = insert(Service).values(
            org_id=org_id, name=name, name_key=name_key, duration_minutes=minutes
        )
        stmt = stmt.on_conflict_do_update(
            constraint=UQ_SERVICES_ORG_NAME,
            set_={"name": stmt.excluded.name, "duration_minutes": stmt.excluded.duration_minutes},
        ).returning(Service)
        return self.session.scalars(stmt).one()


class AdoptionRepository:
    """Statements for adopting an existing contacts table (see use_cases/adoption.py)."""

    def __init__(self, session: Session):
        self.session = session

    def lock_for_adoption(self) -> None:
        # Readers continue; writers wait until the merge and the new constraint are committed.
        self.session.execute(text("LOCK TABLE contacts, appointments IN SHARE ROW EXCLUSIVE MODE"))

    def org_regions(self) -> dict[int, str]:
        rows = self.session.execute(select(Organization.id, Organization.phone_region))
        return {row.id: row.phone_region for row in rows}

    def all_contacts(self) -> list:
        return self.session.execute(
            select(
                Contact.id,
                Contact.org_id,
                Contact.name,
                Contact.phone,
                Contact.email,
                Contact.updated_at,
            ).order_by(Contact.id)
        ).all()

    def set_phone(self, contact_id: int, phone: str | None) -> None:
        self.session.execute(update(Contact).where(Contact.id == contact_id).values(phone=phone))

    def set_contact(self, contact_id: int, *, name: str | None, email: str | None) -> None:
        self.session.execute(
            update(Contact)
            .where(Contact.id == contact_id)
            .values(name=name, email=email, updated_at=func.now())
        )

    def move_appointments(self, org_id: int, from_ids: list[int], to_id: int) -> int:
        result = self.session.execute(
            update(Appointment)
            .where(Appointment.org_id == org_id, Appointment.contact_id.in_(from_ids))
            .values(contact_id=to_id)
        )
        return result.rowcount

    def delete_contacts(self, ids: list[int]) -> None:
        self.session.execute(Contact.__table__.delete().where(Contact.id.in_(ids)))

    def lowercase_emails(self) -> None:
        self.session.execute(
            update(Contact)
            .where(
                Contact.email.is_not(None), Contact.email != func.lower(func.trim(Contact.email))
            )
            .values(email=func.lower(func.trim(Contact.email)))
        )

    def add_missing_contact_constraints(self) -> list[str]:
        """Create uq_contacts_org_phone and the phone-less email index where missing."""
        added = []
        exists_constraint = self.session.execute(
            text("SELECT 1 FROM pg_constraint WHERE conname = :n"), {"n": UQ_CONTACTS_ORG_PHONE}
        ).first()
        if not exists_constraint:
            # A plain index of that name would stop the constraint from being created.
            self.session.execute(text(f"DROP INDEX IF EXISTS {UQ_CONTACTS_ORG_PHONE}"))
            self.session.execute(
                text(
                    f"ALTER TABLE contacts ADD CONSTRAINT {UQ_CONTACTS_ORG_PHONE} "
                    "UNIQUE (org_id, phone)"
                )
            )
            added.append(UQ_CONTACTS_ORG_PHONE)
        exists_index = self.session.execute(
            text("SELECT 1 FROM pg_class WHERE relname = :n"),
            {"n": UQ_CONTACTS_ORG_EMAIL_PHONELESS},
        ).first()
        if not exists_index:
            self.session.execute(
                text(
                    f"CREATE UNIQUE INDEX {UQ_CONTACTS_ORG_EMAIL_PHONELESS} "
                    "ON contacts (org_id, email) WHERE phone IS NULL"
                )
            )
            added.append(UQ_CONTACTS_ORG_EMAIL_PHONELESS)
        return added


@dataclass(frozen=True)
class LedgerEntry:
    """What the ledger remembers of an answered tool call, and for whom it answered."""

    fingerprint: str
    answer: dict | None
    vapi_call_id: str | None
    caller: str | None


_tool_calls = ToolCall.__table__


def _claim_statement():
    values = select(
        bindparam("p_org"),
        bindparam("p_tool_call"),
        bindparam("p_call", type_=_tool_calls.c.vapi_call_id.type),
        bindparam("p_caller", type_=_tool_calls.c.caller.type),
        bindparam("p_limit_key"),
        bindparam("p_tool"),
        bindparam("p_fingerprint"),
    )
    claim = (
        insert(_tool_calls)
        .from_select(
            [
                "org_id",
                "tool_call_id",
                "vapi_call_id",
                "caller",
                "limit_key",
                "tool_name",
                "fingerprint",
            ],
            values,
        )
        .on_conflict_do_nothing(constraint=UQ_TOOL_CALLS_ORG_TOOL_CALL)
        .returning(_tool_calls.c.id)
    )
    # Then, in the same round trip and only for a new claim (a repeat gets its stored answer
    # without waiting), the lock of the limit key (the VAPI call, else the caller, else the
    # request). It is held until commit, so `changes` counts race-free. Each transaction
    # takes one such lock, after its claim, so two tool calls cannot wait on each other.
    claimed = claim.cte("claim")
    lock = func.pg_advisory_xact_lock(func.hashtextextended(bindparam("p_lock"), 0))
    return select(claimed.c.id, lock.label("locked")).select_from(claimed)


_CLAIM = _claim_statement()
# Changes of one limit key in the last day: a VAPI call never lasts that long, and a caller
# without call ids (no VAPI request lacks one) is not shut out for good.
_CHANGES = (
    select(func.count())
    .select_from(_tool_calls)
    .where(
        _tool_calls.c.org_id == bindparam("p_org"),
        _tool_calls.c.limit_key == bindparam("p_limit_key"),
        _tool_calls.c.tool_name.in_(bindparam("p_tools", expanding=True)),
        _tool_calls.c.created_at > func.now() - literal_column("interval '1 day'"),
    )
)
_RECORD_ANSWER = (
    update(_tool_calls)
    .where(
        _tool_calls.c.org_id == bindparam("p_org"),
        _tool_calls.c.tool_call_id == bindparam("p_tool_call"),
    )
    .values(answer=bindparam("p_answer", type_=_tool_calls.c.answer.type))
)


@dataclass(frozen=True)
class LedgerKey:
    """Identifies one tool call for the ledger, with the request it came from."""

    org_id: int
    tool_call_id: str
    vapi_call_id: str | None
    caller: str | None  # the verified caller's number
    limit_key: str  # what the change limit counts by (see ToolCall.limit_key)
    tool_name: str
    fingerprint: str

    def values(self) -> dict:
        return {
            "p_org": self.org_id,
            "p_tool_call": self.tool_call_id,
            "p_call": self.vapi_call_id,
            "p_caller": self.caller,
            "p_limit_key": self.limit_key,
            "p_tool": self.tool_name,
            "p_fingerprint": self.fingerprint,
        }


class ToolCallLedger:
    """The idempotency ledger, written in the same transaction as the tool's effects."""

    def __init__(self, session: Session):
        self.session = session

    def claim(self, key: LedgerKey) -> bool:
        """Reserve the tool call id; False when it was answered before.

        A new claim then takes a transaction-scoped advisory lock on (organization, limit
        key), so changes of one VAPI call (or caller, or request) run one after the other.
        LockTimeout means the wait for either (a duplicate, or another change under the same
        key) outlasted lock_timeout.

        A concurrent transaction holding the same id makes this statement wait until that
        transaction ends (the unique index serialises them): then it is either answered
        (False) or rolled back (True, the claim is ours).
        """
        values = {**key.values(), "p_lock": f"{key.org_id}:{key.limit_key}"}
        try:
            return self.session.execute(_CLAIM, values).first() is not None
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                raise LockTimeout() from exc
            raise

    def get(self, org_id: int, tool_call_id: str) -> LedgerEntry | None:
        row = self.session.execute(
            select(
                ToolCall.fingerprint, ToolCall.answer, ToolCall.vapi_call_id, ToolCall.caller
            ).where(ToolCall.org_id == org_id, ToolCall.tool_call_id == tool_call_id)
        ).first()
        return (
            LedgerEntry(row.fingerprint, row.answer, row.vapi_call_id, row.caller) if row else None
        )

    def changes(self, org_id: int, limit_key: str, tool_names: tuple[str, ...]) -> int:
        """How many changing tool calls (refused ones included) were made under this limit
        key in the last day, this transaction's own claim included.

        Call it after `claim` in the same transaction: the claim holds the key's lock, so this
        statement (with a snapshot taken after the lock was granted) sees every claim made
        under the key before, and parallel tool calls cannot all pass a limit.
        """
        return self.session.scalar(
            _CHANGES,
            {"p_org": org_id, "p_limit_key": limit_key, "p_tools": list(tool_names)},
        )

    def record_answer(self, org_id: int, tool_call_id: str, answer: dict) -> None:
        self.session.execute(
            _RECORD_ANSWER, {"p_org": org_id, "p_tool_call": tool_call_id, "p_answer": answer}
        )
