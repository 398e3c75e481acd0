"""Resources (bookable people, chairs, rooms), their hours, and services: set-up use cases."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import date, time

from booking_service.domain.errors import InputError, NotFound, UniqueViolation
from booking_service.persistence.unit_of_work import AbstractUnitOfWork

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


class ScheduleInputError(InputError):
    """Bad set-up input (hours, names, durations); the message says what and how to fix it."""


@dataclass(frozen=True)
class ResourceInfo:
    """A resource with its weekly hours as text, for listings."""

    id: int
    org_id: int
    name: str
    hours: dict[str, list[str]]


def name_key(name: str) -> str:
    """Case- and space-insensitive key used to match names said by callers."""
    return " ".join(name.split()).lower()


def _clock(hours: str, minutes: str, spec: str) -> time:
    h, m = int(hours), int(minutes)
    if h > 23 or m > 59:
        raise ScheduleInputError(f"bad time in {spec!r}")
    return time(h, m)


def parse_ranges(text: str, spec: str) -> list[tuple[time, time]]:
    """'09:00-12:00,13:00-17:00' → [(09:00, 12:00), (13:00, 17:00)], checked and sorted."""
    ranges = []
    for part in text.split(","):
        match = _RANGE.match(part.strip())
        if not match:
            raise ScheduleInputError(
                f"bad time range {part.strip()!r} in {spec!r} (use HH:MM-HH:MM)"
            )
        opens = _clock(match[1], match[2], spec)
        closes = _clock(match[3], match[4], spec)
        if closes <= opens:
            raise ScheduleInputError(f"{part.strip()!r} closes before it opens in {spec!r}")
        ranges.append((opens, closes))
    ranges.sort()
    for (_, end), (start, _) in itertools.pairwise(ranges):
        if start < end:
            raise ScheduleInputError(f"time ranges overlap in {spec!r}")
    return ranges


def _days(text: str, spec: str) -> list[int]:
    days: list[int] = []
    for part in text.lower().split(","):
        first, _, last = part.strip().partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ScheduleInputError(f"bad day {part.strip()!r} in {spec!r} (use mon..sun)")
        a, b = DAYS.index(first), DAYS.index(last or first)
        if b < a:
            raise ScheduleInputError(f"day range {part.strip()!r} runs backwards in {spec!r}")
        days.extend(range(a, b + 1))
    return days


def parse_hours(specs: list[str]) -> dict[int, list[tuple[time, time]]]:
    """["mon-fri 09:00-12:00,13:00-17:00", "sat 10:00-14:00"] → {weekday: ranges}."""
    weekly: dict[int, list[tuple[time, time]]] = {}
    for spec in specs:
        days_text, _, ranges_text = spec.strip().partition(" ")
        if not ranges_text.strip():
            raise ScheduleInputError(f"bad hours {spec!r} (use e.g. 'mon-fri 09:00-17:00')")
        ranges = parse_ranges(ranges_text.replace(" ", ""), spec)
        for day in _days(days_text, spec):
            if day in weekly:
                raise ScheduleInputError(f"{DAYS[day]} is given twice")
            weekly[day] = ranges
    return weekly


def add_resource_in(uow: AbstractUnitOfWork, org_id: int, name: str, hours: list[str]) -> int:
    """Add a resource with weekly hours inside the caller's transaction; return its id."""
    clean = " ".join((name or "").split())
    if not clean or len(clean) > 100:
        raise ScheduleInputError("a resource needs a name of at most 100 characters")
    weekly = parse_hours(hours)
    try:
        with uow.savepoint():
            resource = uow.schedule.add_resource(org_id, clean, name_key(clean))
    except UniqueViolation:
        raise ScheduleInputError(f"a resource named {clean!r} already exists") from None
    for weekday, ranges in sorted(weekly.items()):
        for opens, closes in ranges:
            uow.schedule.add_hours(resource, weekday, opens, closes)
    return resource.id


def add_resource(uow: AbstractUnitOfWork, org_id: int, name: str, hours: list[str]) -> ResourceInfo:
    """Add a bookable resource with weekly hours (local time of the organization)."""
    with uow:
        if uow.organizations.get(org_id) is None:
            raise NotFound("organization", org_id)
        resource_id = add_resource_in(uow, org_id, name, hours)
        uow.commit()
    return next(r for r in list_resources(uow, org_id) if r.id == resource_id)


def list_resources(uow: AbstractUnitOfWork, org_id: int) -> list[ResourceInfo]:
    """Resources of an organization with their weekly hours."""
    # A use case of its own: it opens (and closes) the unit of work.
    with uow:
        resources = uow.schedule.resources(org_id)
        hours = uow.schedule.weekly_hours(org_id, [r.id for r in resources])
        by_resource: dict[int, dict[str, list[str]]] = {r.id: {} for r in resources}
        for row in sorted(hours, key=lambda h: (h.weekday, h.opens)):
            by_resource[row.resource_id].setdefault(DAYS[row.weekday], []).append(
                f"{row.opens:%H:%M}-{row.closes:%H:%M}"
            )
        return [ResourceInfo(r.id, r.org_id, r.name, by_resource[r.id]) for r in resources]


def set_day(
    uow: AbstractUnitOfWork,
    resource_id: int,
    day: date,
    hours: str | None = None,
    *,
    org_id: int | None = None,
) -> dict:
    """Close a resource on `day` (no hours) or give it other hours that day. `org_id` scopes
    the change (a signed-in page passes its own organization)."""
    ranges = parse_ranges(hours.replace(" ", ""), hours) if hours else []
    with uow:
        # Locked: set_exception deletes and inserts; two saves of one day must not both insert.
        resource = uow.schedule.resource(resource_id, lock=True)
        if resource is None or (org_id is not None and resource.org_id != org_id):
            raise NotFound("resource", resource_id)
        uow.schedule.set_exception(resource, day, ranges)
        result = {
            "resource_id": resource.id,
            "org_id": resource.org_id,
            "date": day.isoformat(),
            "hours": [f"{a:%H:%M}-{b:%H:%M}" for a, b in ranges],
            "closed": not ranges,
        }
        uow.commit()
    return result


def add_service(uow: AbstractUnitOfWork, org_id: int, name: str, minutes: int) -> dict:
    """Add (or change the duration of) a named service."""
    clean = " ".join((name or "").split())
    if not clean or len(clean) > 100:
        raise ScheduleInputError("a service needs a name of at most 100 characters")
    if not 5 <= minutes <= 480:
        raise ScheduleInputError("a service lasts between 5 and 480 minutes")
    with uow:
        if uow.organizations.get(org_id) is None:
            raise NotFound("organization", org_id)
        service = uow.schedule.upsert_service(org_id, clean, name_key(clean), minutes)
        result = {
            "id": service.id,
            "org_id": org_id,
            "name": service.name,
            "minutes": service.duration_minutes,
        }
        uow.commit()
    return result


def set_weekly_hours(
    uow: AbstractUnitOfWork, org_id: int, resource_id: int, by_day: dict[int, str]
) -> ResourceInfo:
    """Replace a resource's weekly hours: weekday (0 = Monday) → "09:00-12:00,13:00-17:00";
    a day left out or empty is closed. Appointments already booked stay as they are."""
    if any(day not in range(7) for day in by_day):
        raise ScheduleInputError("weekdays are 0 (Monday) to 6 (Sunday)")
    weekly = {
        day: parse_ranges(text.replace(" ", ""), f"{DAYS[day]} {text}")
        for day, text in sorted(by_day.items())
        if text.strip()
    }
    with uow:
        # Locked: two saves at once must not both delete the old hours and both insert theirs.
        resource = uow.schedule.resource(resource_id, lock=True)
        if resource is None or resource.org_id != org_id:
            raise NotFound("resource", resource_id)
        uow.schedule.clear_hours(resource)
        for weekday, ranges in weekly.items():
            for opens, closes in ranges:
                uow.schedule.add_hours(resource, weekday, opens, closes)
        uow.commit()
    return next(r for r in list_resources(uow, org_id) if r.id == resource_id)


def clear_day(uow: AbstractUnitOfWork, org_id: int, resource_id: int, day: date) -> None:
    """Undo a closed or changed day of a resource of the organization: its weekly hours apply
    again (already so: nothing to do). NotFound for another organization's resource."""
    with uow:
        resource = uow.schedule.resource(resource_id, lock=True)
        if resource is None or resource.org_id != org_id:
            raise NotFound("resource", resource_id)
        uow.schedule.clear_exception(resource, day)
        uow.commit()


def exceptions_ahead(uow: AbstractUnitOfWork, org_id: int, first: date) -> list[dict]:
    """Closed days and changed hours from `first` on, by day: {resource_id, date, hours}."""
    with uow:
        rows = uow.schedule.exceptions_from(org_id, first)
    days: dict[tuple[int, date], list[str]] = {}
    for resource_id, day, opens, closes in rows:
        ranges = days.setdefault((resource_id, day), [])
        if opens is not None and closes is not None:
            ranges.append(f"{opens:%H:%M}-{closes:%H:%M}")
    return [
        {"resource_id": rid, "date": day, "hours": hours}
        for (rid, day), hours in sorted(days.items(), key=lambda item: (item[0][1], item[0][0]))
    ]
