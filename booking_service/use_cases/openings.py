"""Checking one start and finding the nearest alternatives: what booking and rescheduling
both ask before they write.

The rules (hours, notice, horizon, grid, busy) shape the refusal; PostgreSQL's exclusion
constraint is what finally refuses a double booking. A refusal is a StartRefused carrying the
reason and up to three nearest bookable starts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from booking_service.domain import scheduling
from booking_service.domain.errors import CalendarUnavailable, StartRefused
from booking_service.domain.scheduling import Range, ResourceSchedule, Slot
from booking_service.domain.times import ParsedStart
from booking_service.persistence.repositories.schedule import (
    DayException,
    LinkState,
    ResourceRow,
    WeeklyHours,
)
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases.orgs import OrgInfo


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, datetime.min.time()).replace(tzinfo=zone)


def load_schedules(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    resources: list[ResourceRow],
    first: date,
    last: date,
    *,
    exclude_appointment: int | None = None,
    busy_between: tuple[datetime, datetime] | None = None,
    now: datetime | None = None,
) -> list[ResourceSchedule]:
    """Hours, exceptions and busy ranges of `resources` for local dates first..last; busy
    includes what the owner's linked calendars say (as last read by the worker).

    `busy_between` narrows the busy ranges to those overlapping it (enough to check one start).
    With `now`, a resource whose calendar is stale with policy "refuse" is busy throughout: it
    is not offered, since booking it would be refused.
    """
    schedules, calendars = _load(
        uow,
        org,
        resources,
        first,
        last,
        exclude_appointment=exclude_appointment,
        busy_between=busy_between,
    )
    if now is not None:
        refused_ids = stale_refusing(calendars, now)
        window = busy_between or (
            _midnight(first - timedelta(days=1), org.zone),
            _midnight(last + timedelta(days=2), org.zone),
        )
        schedules = [
            replace(schedule, busy=[window]) if schedule.id in refused_ids else schedule
            for schedule in schedules
        ]
    return schedules


def stale_refusing(calendars: list[LinkState], now: datetime) -> set[int]:
    """The resources with a blocking calendar that is stale and whose policy is "refuse"."""
    return {
        link.resource_id for link in calendars if link.when_stale == "refuse" and link.stale_at(now)
    }


def _load(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    resources: list[ResourceRow],
    first: date,
    last: date,
    *,
    exclude_appointment: int | None,
    busy_between: tuple[datetime, datetime] | None,
) -> tuple[list[ResourceSchedule], list[LinkState]]:
    zone = org.zone
    # A day of margin on both sides: buffers and long appointments cross midnight.
    busy_from, busy_to = busy_between or (
        _midnight(first - timedelta(days=1), zone),
        _midnight(last + timedelta(days=2), zone),
    )
    busy: dict[int, list] = {r.id: [] for r in resources}
    rows = uow.schedule.schedule(
        org.id,
        [r.id for r in resources],
        first,
        last,
        busy_from,
        busy_to,
        exclude_id=exclude_appointment,
    )
    weekly, exceptions = _ranges(rows.hours, rows.exceptions)
    for booked in rows.busy + rows.external:
        busy[booked.resource_id].append((booked.starts_at, booked.blocked_until))
    schedules = [
        ResourceSchedule(r.id, r.name, weekly.get(r.id, {}), exceptions.get(r.id, {}), busy[r.id])
        for r in resources
    ]
    return schedules, rows.calendars


def _ranges(
    hours: list[WeeklyHours], exceptions: list[DayException]
) -> tuple[dict[int, dict[int, list[Range]]], dict[int, dict[date, list[Range]]]]:
    """Weekly ranges by resource and weekday, and exceptions by resource and date ([]: closed
    all day), each list sorted by opening (`hours` comes sorted). A resource without rows
    has no entry."""
    weekly: dict[int, dict[int, list[Range]]] = {}
    dated: dict[int, dict[date, list[Range]]] = {}
    for h in hours:
        weekly.setdefault(h.resource_id, {}).setdefault(h.weekday, []).append((h.opens, h.closes))
    for other in exceptions:
        ranges = dated.setdefault(other.resource_id, {}).setdefault(other.day, [])
        if other.opens is not None and other.closes is not None:  # none: closed all day
            ranges.append((other.opens, other.closes))
            ranges.sort()
    return weekly, dated


@dataclass(frozen=True)
class OpeningHours:
    """An organization's opening hours as of `version`, kept by the worker (org_cache.py):
    the exceptions only for the dates first..last. Shared by requests: read only."""

    version: int
    first: date
    last: date
    weekly: dict[int, dict[int, list[Range]]]
    exceptions: dict[int, dict[date, list[Range]]]


def _opening_hours(uow: AbstractUnitOfWork, org: OrgInfo, now: datetime) -> OpeningHours | None:
    """The organization's opening hours at its version: kept, or read (one statement) and
    kept. None when what the database holds is another version than `org` (the request's
    confirmation of the organization deals with that; this only declines to answer)."""
    cache = uow.org_cache
    if cache is None:
        return None
    kept = cache.opening_hours(org.id, org.version)
    today = now.astimezone(org.zone).date()
    if kept is not None and kept.first >= today - timedelta(days=1):
        return kept  # else read again: kept on an earlier day, its dates fall short by now
    # A day of margin each side of what a booking may ask (notice ... horizon), in local dates.
    first = today - timedelta(days=1)
    last = today + timedelta(days=org.rules.horizon_days + 2)
    rows = uow.schedule.opening_hours(org.id, first, last)
    if rows is None:
        return None
    weekly, dated = _ranges(rows.hours, rows.exceptions)
    read = OpeningHours(rows.version, first, last, weekly, dated)
    cache.keep_opening_hours(org.id, rows.version, read)
    return read if rows.version == org.version else None


def cached_openings(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    resources: list[ResourceRow],
    start: ParsedStart,
    duration: timedelta,
    now: datetime,
) -> Openings | None:
    """The resources whose opening hours take `start`, decided without reading the schedule
    when the worker keeps the organization's hours (org_cache.py); None: ask openings_at.

    Booked and calendar-busy times are not looked at: the insert that follows is made only
    where the exclusion constraint, a fresh blocking calendar and the organization's version
    allow (repositories/appointments.insert_at_version), and a booking refused there asks
    openings_at, whose refusal explains and offers alternatives, and which applies a stale
    calendar's policy. So only a start that may be accepted is answered here: a refusal by
    the hours, a DST gap, a date outside what is kept, all go to openings_at as before.
    """
    if start.nonexistent:
        return None
    hours = _opening_hours(uow, org, now)
    if hours is None:
        return None
    day = start.start.astimezone(org.zone).date()
    if not hours.first <= day <= hours.last:
        return None
    schedules = [
        ResourceSchedule(
            r.id, r.name, hours.weekly.get(r.id, {}), hours.exceptions.get(r.id, {}), []
        )
        for r in resources
    ]
    verdict = scheduling.check_start(schedules, org.rules, org.zone, now, start.start, duration)
    if verdict.reason is not None:
        return None
    return Openings(verdict.resources)


def alternatives(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    resources: list[ResourceRow],
    around: datetime,
    duration: timedelta,
    now: datetime,
    *,
    exclude_appointment: int | None = None,
) -> list[Slot]:
    """Up to three bookable starts nearest to `around`, found by PostgreSQL
    (repositories/free_starts.py): no booking row is loaded into Python.

    The search stops (OutOfTime) when the unit of work could no longer commit anyway.
    """
    search = uow.schedule.free_starts(
        org.id,
        org.timezone,
        {r.id: r.name for r in resources},
        org.rules,
        now,
        duration,
        exclude_id=exclude_appointment,
        deadline=uow.commit_by,
    )
    return scheduling.nearest_starts(search, org.rules, org.zone, now, around)


def alternatives_in_python(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    resources: list[ResourceRow],
    around: datetime,
    duration: timedelta,
    now: datetime,
    *,
    exclude_appointment: int | None = None,
) -> list[Slot]:
    """`alternatives` as computed before #30, loading every booking of the days searched and
    searching them in Python: the reference the database's answers are tested against."""

    def schedules_for(first: date, last: date) -> list[ResourceSchedule]:
        return load_schedules(
            uow, org, resources, first, last, exclude_appointment=exclude_appointment, now=now
        )

    return scheduling.nearest_slots(
        schedules_for, org.rules, org.zone, now, around, duration, deadline=uow.commit_by
    )


def refused(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    resources: list[ResourceRow],
    reason: str,
    start: datetime,
    duration: timedelta,
    now: datetime,
    *,
    exclude_appointment: int | None = None,
    wall: datetime | None = None,
    kept: datetime | None = None,
) -> StartRefused:
    """A StartRefused for `start` with up to three nearest alternatives."""
    offers = alternatives(
        uow, org, resources, start, duration, now, exclude_appointment=exclude_appointment
    )
    return StartRefused(reason, start, offers, wall=wall, kept=kept)


@dataclass(frozen=True)
class Openings:
    """The resources that can take a start, best first; `unconfirmed` are those whose calendar
    could not be checked lately but whose policy is to book anyway."""

    resources: list[int]
    unconfirmed: frozenset[int] = frozenset()


def apply_calendar_policy(
    free: list[int], calendars: list[LinkState], start: datetime, now: datetime
) -> Openings:
    """Drop the resources whose blocking calendar is stale with policy "refuse"; put those
    stale with "book" last and mark them unconfirmed. Raises CalendarUnavailable when only
    refused ones could have taken the start: never a silent "free"."""
    refuse: set[int] = set()
    book: set[int] = set()
    for link in calendars:
        if not link.stale_at(now):
            continue
        (refuse if link.when_stale == "refuse" else book).add(link.resource_id)
    usable = [rid for rid in free if rid not in refuse]
    if free and not usable:
        raise CalendarUnavailable(start)
    usable.sort(key=lambda rid: rid in book)  # fresh calendars first; the sort is stable
    return Openings(usable, frozenset(rid for rid in usable if rid in book))


def openings_at(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    resources: list[ResourceRow],
    start: ParsedStart,
    duration: timedelta,
    now: datetime,
    *,
    exclude_appointment: int | None = None,
) -> Openings:
    """The resources that can take `start`, or raise StartRefused with alternatives (or
    CalendarUnavailable, see `apply_calendar_policy`)."""
    if start.nonexistent:
        raise refused(
            uow,
            org,
            resources,
            StartRefused.NONEXISTENT,
            start.start,
            duration,
            now,
            exclude_appointment=exclude_appointment,
            wall=start.wall,
        )
    day = start.start.astimezone(org.zone).date()
    # Only what overlaps the requested time (with the buffer) can make it taken.
    schedules, calendars = _load(
        uow,
        org,
        resources,
        day,
        day,
        exclude_appointment=exclude_appointment,
        busy_between=(start.start, start.start + duration + org.rules.buffer),
    )
    verdict = scheduling.check_start(schedules, org.rules, org.zone, now, start.start, duration)
    if verdict.reason is not None:
        raise refused(
            uow,
            org,
            resources,
            verdict.reason,
            start.start,
            duration,
            now,
            exclude_appointment=exclude_appointment,
        )
    return apply_calendar_policy(verdict.resources, calendars, start.start, now)
