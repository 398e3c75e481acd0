"""Resources, weekly hours, dated exceptions, busy ranges and the service catalogue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy import (
    Date,
    DateTime,
    SmallInteger,
    bindparam,
    cast,
    func,
    literal,
    null,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from booking_service.models import (
    UQ_SERVICES_ORG_NAME,
    Appointment,
    Resource,
    ScheduleException,
    Service,
    WorkingHours,
)
from booking_service.repositories.common import blocked_range


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
        blocked_range(Appointment.starts_at, Appointment.blocked_until).op("&&")(
            blocked_range(bindparam("p_busy_from"), bindparam("p_busy_to"))
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
