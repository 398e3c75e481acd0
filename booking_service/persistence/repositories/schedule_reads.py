"""What the scheduler reads to find free times, each in one round trip: the weekly hours and
dated exceptions of resources, their busy ranges (booked appointments, and the times linked
calendars say are busy) with those calendars' freshness, and an organization's opening hours
as of its config_version (what the organization cache keeps)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    SmallInteger,
    bindparam,
    case,
    cast,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from booking_service.domain.scheduling import Rules
from booking_service.persistence.models import (
    Appointment,
    CalendarBusy,
    CalendarLink,
    Organization,
    ScheduleException,
    WorkingHours,
)
from booking_service.persistence.repositories.common import (
    CANCELLED,
    blocked_range,
    link_blocks,
    link_fresh_until,
)
from booking_service.persistence.repositories.driver import HotStatement
from booking_service.persistence.repositories.free_starts import FreeStarts


@dataclass(frozen=True)
class WeeklyHours:
    """A weekly opening range of a resource (0 = Monday), local time."""

    resource_id: int
    weekday: int
    opens: time
    closes: time


@dataclass(frozen=True)
class DayException:
    """Other hours on one date; no `opens` means closed all day."""

    resource_id: int
    day: date
    opens: time | None
    closes: time | None


@dataclass(frozen=True)
class BusyRange:
    """A booked appointment's time, buffer included."""

    resource_id: int
    starts_at: datetime
    blocked_until: datetime


@dataclass(frozen=True)
class LinkState:
    """A blocking calendar link of a resource: its busy times are good until `fresh_until`
    (None: never read); after that `when_stale` ("refuse" or "book") applies."""

    resource_id: int
    fresh_until: datetime | None
    when_stale: str

    def stale_at(self, now: datetime) -> bool:
        return self.fresh_until is None or self.fresh_until <= now


@dataclass(frozen=True)
class ScheduleRows:
    """What the scheduler needs: weekly hours (sorted by opening), exceptions, busy ranges
    (booked appointments, and times the owner's own calendars say are busy), and the state of
    the calendars those come from."""

    hours: list[WeeklyHours]
    exceptions: list[DayException]
    busy: list[BusyRange]
    external: list[BusyRange] = field(default_factory=list)
    calendars: list[LinkState] = field(default_factory=list)


# Every row of the schedule and opening-hours reads has these eight columns (a union needs
# one shape): what kind of row, then what that kind fills in.
_NO_TIME = cast(null(), WorkingHours.opens.type)
_NO_MOMENT = cast(null(), DateTime(timezone=True))


def _hours_select(*where):
    """Weekly hours as 'h' rows."""
    return select(
        literal("h").label("kind"),
        WorkingHours.resource_id,
        WorkingHours.weekday,
        cast(null(), Date).label("day"),
        WorkingHours.opens,
        WorkingHours.closes,
        _NO_MOMENT.label("starts_at"),
        _NO_MOMENT.label("blocked_until"),
    ).where(*where)


def _exceptions_select(*where):
    """Dated exceptions as 'x' rows."""
    return select(
        literal("x"),
        ScheduleException.resource_id,
        cast(null(), SmallInteger),
        ScheduleException.day,
        ScheduleException.opens,
        ScheduleException.closes,
        _NO_MOMENT,
        _NO_MOMENT,
    ).where(*where)


def _schedule_statement():
    org = bindparam("p_org", type_=BigInteger)
    # An array, not an expanding IN: PostgreSQL plans `= ANY(array)` as it plans IN (...), and
    # the statement's SQL stays the same whatever the number of resources (see driver.py).
    resources = func.any(bindparam("p_resources", type_=ARRAY(BigInteger)))
    hours = _hours_select(WorkingHours.org_id == org, WorkingHours.resource_id == resources)
    exceptions = _exceptions_select(
        ScheduleException.org_id == org,
        ScheduleException.resource_id == resources,
        ScheduleException.day.between(bindparam("p_first"), bindparam("p_last")),
    )
    busy = select(
        literal("b"),
        Appointment.resource_id,
        cast(null(), SmallInteger),
        cast(null(), Date),
        _NO_TIME,
        _NO_TIME,
        Appointment.starts_at,
        Appointment.blocked_until,
    ).where(
        Appointment.org_id == org,
        Appointment.resource_id == resources,
        # As the exclusion constraint: everything but a cancellation holds its time.
        Appointment.status != CANCELLED,
        # Spelled as the exclusion constraint's indexed expression (the bounds literal, not a
        # parameter), so its GiST index finds the overlaps, however long the history.
        blocked_range(Appointment.starts_at, Appointment.blocked_until).op("&&")(
            blocked_range(bindparam("p_busy_from"), bindparam("p_busy_to"))
        ),
        Appointment.id != bindparam("p_exclude"),
    )
    # Read from our own tables (the worker's last poll): the booking path never calls a
    # calendar server.
    external = select(
        literal("c"),
        CalendarBusy.resource_id,
        cast(null(), SmallInteger),
        cast(null(), Date),
        _NO_TIME,
        _NO_TIME,
        CalendarBusy.starts_at,
        CalendarBusy.ends_at,
    ).where(
        CalendarBusy.org_id == org,
        CalendarBusy.resource_id == resources,
        CalendarBusy.starts_at < bindparam("p_busy_to"),
        CalendarBusy.ends_at > bindparam("p_busy_from"),
        link_blocks(CalendarBusy.link_id, CalendarBusy.resource_id),
    )
    # One row per blocking link: the policy in `weekday` (1 = book when stale, 0 = refuse),
    # the end of its freshness in `blocked_until`.
    links = select(
        literal("l"),
        CalendarLink.resource_id,
        cast(case((CalendarLink.when_stale == "book", 1), else_=0), SmallInteger),
        cast(null(), Date),
        _NO_TIME,
        _NO_TIME,
        _NO_MOMENT,
        link_fresh_until(CalendarLink.last_good_sync_at, CalendarLink.max_staleness_minutes),
    ).where(
        CalendarLink.org_id == org,
        CalendarLink.resource_id == resources,
        CalendarLink.block,
    )
    return union_all(hours, exceptions, busy, external, links)


def _opening_hours_statement():
    """The organization's version, with the weekly hours and exceptions (first..last) of all
    its resources: read in one snapshot, so what is kept under that version is what that
    version was."""
    org = bindparam("p_org", type_=BigInteger)
    version = select(
        literal("v"),
        Organization.config_version,  # in the resource_id column
        cast(null(), SmallInteger),
        cast(null(), Date),
        _NO_TIME,
        _NO_TIME,
        _NO_MOMENT,
        _NO_MOMENT,
    ).where(Organization.id == org)
    hours = _hours_select(WorkingHours.org_id == org)
    exceptions = _exceptions_select(
        ScheduleException.org_id == org,
        ScheduleException.day.between(bindparam("p_first"), bindparam("p_last")),
    )
    # Hours first: a union's column names are those of its first select.
    return union_all(hours, exceptions, version)


_SCHEDULE = HotStatement(_schedule_statement())
_OPENING_HOURS = HotStatement(_opening_hours_statement())


@dataclass(frozen=True)
class OpeningHoursRows:
    """An organization's opening hours as of `version`: weekly hours (sorted by opening) and
    the exceptions dated first..last."""

    version: int
    first: date
    last: date
    hours: list[WeeklyHours]
    exceptions: list[DayException]


class ScheduleReads:
    """The scheduler's reads; part of ScheduleRepository (uow.schedule)."""

    session: Session

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
        """Weekly hours, the exceptions dated first..last, the booked ranges overlapping
        [busy_from, busy_to) of these resources (except `exclude_id`), the calendars' busy
        times there and the calendars' freshness, in one round trip."""
        rows = _SCHEDULE.execute(
            self.session,
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
        hours, exceptions, busy, external, calendars = [], [], [], [], []
        for r in rows:
            if r.kind == "h":
                hours.append(WeeklyHours(r.resource_id, r.weekday, r.opens, r.closes))
            elif r.kind == "x":
                exceptions.append(DayException(r.resource_id, r.day, r.opens, r.closes))
            elif r.kind == "b":
                busy.append(BusyRange(r.resource_id, r.starts_at, r.blocked_until))
            elif r.kind == "c":
                external.append(BusyRange(r.resource_id, r.starts_at, r.blocked_until))
            else:
                policy = "book" if r.weekday == 1 else "refuse"
                calendars.append(LinkState(r.resource_id, r.blocked_until, policy))
        hours.sort(key=lambda h: h.opens)
        return ScheduleRows(hours, exceptions, busy, external, calendars)

    def opening_hours(self, org_id: int, first: date, last: date) -> OpeningHoursRows | None:
        """The organization's version and opening hours read together (None: no such
        organization): what a worker may keep while that version holds (org_cache.py)."""
        rows = _OPENING_HOURS.execute(
            self.session, {"p_org": org_id, "p_first": first, "p_last": last}
        ).all()
        version = None
        hours, exceptions = [], []
        for r in rows:
            if r.kind == "v":
                version = r.resource_id
            elif r.kind == "h":
                hours.append(WeeklyHours(r.resource_id, r.weekday, r.opens, r.closes))
            else:
                exceptions.append(DayException(r.resource_id, r.day, r.opens, r.closes))
        if version is None:
            return None
        hours.sort(key=lambda h: h.opens)
        return OpeningHoursRows(version, first, last, hours, exceptions)

    def free_starts(
        self,
        org_id: int,
        timezone: str,
        resources: dict[int, str],
        rules: Rules,
        now: datetime,
        duration: timedelta,
        *,
        exclude_id: int | None = None,
        deadline: float | None = None,
    ) -> FreeStarts:
        """The free starts of these resources (id -> name), searched window by window in
        PostgreSQL (scheduling.WindowSearch): what a refusal offers."""
        return FreeStarts(
            self.session,
            org_id,
            timezone,
            resources,
            rules,
            now,
            duration,
            exclude_id=exclude_id,
            deadline=deadline,
        )

    def weekly_hours(self, org_id: int, resource_ids: list[int]) -> list[WeeklyHours]:
        rows = self.session.execute(
            select(
                WorkingHours.resource_id,
                WorkingHours.weekday,
                WorkingHours.opens,
                WorkingHours.closes,
            )
            .where(WorkingHours.org_id == org_id, WorkingHours.resource_id.in_(resource_ids))
            .order_by(WorkingHours.opens)
        )
        return [WeeklyHours(*row) for row in rows]
