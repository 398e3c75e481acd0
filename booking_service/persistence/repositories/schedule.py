"""Resources, weekly hours, dated exceptions, busy ranges and the service catalogue (uow.schedule).

Setting up resources, their hours and exceptions, and services is here; the scheduler's reads
(hours, exceptions and busy ranges in one round trip) are in schedule_reads.py, and their row
types are importable from here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time

from sqlalchemy import (
    SmallInteger,
    bindparam,
    cast,
    delete,
    func,
    literal,
    null,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from booking_service.persistence.db import table
from booking_service.persistence.models import (
    UQ_SERVICES_ORG_NAME,
    Resource,
    ScheduleException,
    Service,
    WorkingHours,
)
from booking_service.persistence.repositories.driver import HotStatement
from booking_service.persistence.repositories.schedule_reads import (
    BusyRange,
    DayException,
    LinkState,
    OpeningHoursRows,
    ScheduleReads,
    ScheduleRows,
    WeeklyHours,
)

__all__ = [
    "BusyRange",
    "DayException",
    "LinkState",
    "OpeningHoursRows",
    "ResourceRow",
    "ScheduleRepository",
    "ScheduleRows",
    "ServiceRow",
    "WeeklyHours",
]


@dataclass(frozen=True)
class ResourceRow:
    """A bookable resource (person, chair, room)."""

    id: int
    org_id: int
    name: str
    name_key: str


@dataclass(frozen=True)
class ServiceRow:
    """A service the organization offers, with its default length."""

    id: int
    name: str
    name_key: str
    duration_minutes: int


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


_CATALOGUE = HotStatement(_catalogue_statement())

_resources = table(Resource)
_RESOURCE_COLUMNS = (_resources.c.id, _resources.c.org_id, _resources.c.name, _resources.c.name_key)


class ScheduleRepository(ScheduleReads):
    """Resources, their weekly hours and dated exceptions, busy ranges, and services."""

    def __init__(self, session: Session):
        self.session = session

    def resources(self, org_id: int) -> list[ResourceRow]:
        rows = self.session.execute(
            select(*_RESOURCE_COLUMNS)
            .where(_resources.c.org_id == org_id)
            .order_by(_resources.c.id)
        )
        return [ResourceRow(*row) for row in rows]

    def resource(self, resource_id: int, *, lock: bool = False) -> ResourceRow | None:
        """The resource with this id; with `lock`, FOR NO KEY UPDATE: changes to its hours
        run one after another, while bookings (whose foreign key takes KEY SHARE) go on."""
        stmt = select(*_RESOURCE_COLUMNS).where(_resources.c.id == resource_id)
        locked = stmt.with_for_update(key_share=True) if lock else stmt
        row = self.session.execute(locked).first()
        return ResourceRow(*row) if row is not None else None

    def add_resource(self, org_id: int, name: str, name_key: str) -> ResourceRow:
        """Insert a resource; a name taken in the organization raises a unique violation."""
        row = self.session.execute(
            insert(_resources)
            .values(org_id=org_id, name=name, name_key=name_key)
            .returning(*_RESOURCE_COLUMNS)
        ).one()
        return ResourceRow(*row)

    def add_hours(self, resource: ResourceRow, weekday: int, opens: time, closes: time) -> None:
        self.session.execute(
            insert(WorkingHours).values(
                org_id=resource.org_id,
                resource_id=resource.id,
                weekday=weekday,
                opens=opens,
                closes=closes,
            )
        )

    def clear_hours(self, resource: ResourceRow) -> None:
        """Remove the resource's weekly hours (to be replaced in the same transaction)."""
        self.session.execute(
            delete(WorkingHours).where(
                WorkingHours.org_id == resource.org_id, WorkingHours.resource_id == resource.id
            )
        )

    def exceptions_from(self, org_id: int, first: date) -> list[tuple]:
        """(resource_id, day, opens, closes) of the organization's exceptions from `first`."""
        rows = self.session.execute(
            select(
                ScheduleException.resource_id,
                ScheduleException.day,
                ScheduleException.opens,
                ScheduleException.closes,
            )
            .where(ScheduleException.org_id == org_id, ScheduleException.day >= first)
            .order_by(ScheduleException.day, ScheduleException.opens)
            .limit(500)
        )
        return [tuple(row) for row in rows]

    def clear_exception(self, resource: ResourceRow, day: date) -> int:
        """Remove the exceptions of `day` (the weekly hours apply again); how many there were."""
        return self.session.execute(  # type: ignore[attr-defined]
            delete(ScheduleException).where(
                ScheduleException.org_id == resource.org_id,
                ScheduleException.resource_id == resource.id,
                ScheduleException.day == day,
            )
        ).rowcount

    def set_exception(
        self, resource: ResourceRow, day: date, ranges: list[tuple[time, time]]
    ) -> None:
        """Replace the exceptions of `day`: no ranges means closed all day."""
        self.clear_exception(resource, day)
        opening: list[tuple[time | None, time | None]] = list(ranges) or [(None, None)]
        self.session.execute(
            insert(ScheduleException),
            [
                {
                    "org_id": resource.org_id,
                    "resource_id": resource.id,
                    "day": day,
                    "opens": opens,
                    "closes": closes,
                }
                for opens, closes in opening
            ],
        )

    def catalogue(self, org_id: int) -> tuple[list[ResourceRow], list[ServiceRow]]:
        """The organization's resources (by id) and services (by name), in one round trip."""
        rows = _CATALOGUE.execute(self.session, {"p_org": org_id}).all()
        return (
            [ResourceRow(r.id, org_id, r.name, r.name_key) for r in rows if r.kind == "r"],
            [ServiceRow(r.id, r.name, r.name_key, r.minutes) for r in rows if r.kind == "s"],
        )

    def upsert_service(self, org_id: int, name: str, name_key: str, minutes: int) -> ServiceRow:
        """Insert the service, or change its name's spelling and duration."""
        new = insert(Service).values(
            org_id=org_id, name=name, name_key=name_key, duration_minutes=minutes
        )
        stmt = new.on_conflict_do_update(
            constraint=UQ_SERVICES_ORG_NAME,
            set_={"name": new.excluded.name, "duration_minutes": new.excluded.duration_minutes},
        ).returning(Service.id, Service.name, Service.name_key, Service.duration_minutes)
        return ServiceRow(*self.session.execute(stmt).one())
