"""Availability against the database: load schedules, check a start, offer alternatives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from booking_service.errors import ToolError
from booking_service.repositories.schedule import ResourceRow, ServiceRow
from booking_service.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases import scheduling
from booking_service.use_cases.orgs import OrgInfo
from booking_service.use_cases.resources import name_key
from booking_service.use_cases.scheduling import ResourceSchedule, Slot
from booking_service.use_cases.times import (
    spoken_date,
    spoken_datetime,
    spoken_time,
    today_sentence,
)

# How far to look for "the next day that has room" when a requested day is full.
_NEXT_DAY_CHUNK = timedelta(days=14)


@dataclass(frozen=True)
class ServiceChoice:
    """The catalogue service to record (None when the organization has no catalogue), the
    appointment length, and the caller's own words when no catalogue could match them."""

    name: str | None
    minutes: int
    asked: str | None = None


@dataclass(frozen=True)
class Catalogue:
    """What an organization offers: its resources (by id) and services (by name)."""

    resources: list[ResourceRow]
    services: list[ServiceRow]

    def resource_names(self) -> dict[int, str]:
        return {r.id: r.name for r in self.resources}


def load_catalogue(uow: AbstractUnitOfWork, org: OrgInfo) -> Catalogue:
    """The organization's resources and services (one statement)."""
    return Catalogue(*uow.schedule.catalogue(org.id))


def choose_resources(catalogue: Catalogue, requested: str | None) -> list[ResourceRow]:
    """All resources, or the one the caller named (case-insensitive); unknown → ToolError."""
    resources = catalogue.resources
    if not resources:
        raise ToolError(
            "Nothing can be booked online at the moment. Please ask the business directly."
        )
    if not requested:
        return resources
    match = [r for r in resources if r.name_key == name_key(requested)]
    if not match:
        names = ", ".join(r.name for r in resources)
        raise ToolError(f"I don't know {requested[:60]!r}. You can book with: {names}.")
    return match


def choose_service(
    catalogue: Catalogue, org: OrgInfo, service: str | None, minutes: int | None
) -> ServiceChoice:
    """Match the service (when the organization lists services) and settle the duration."""
    offered = catalogue.services
    if service and offered:
        match = next((s for s in offered if s.name_key == name_key(service)), None)
        if match is None:
            names = ", ".join(f"{s.name} ({s.duration_minutes} minutes)" for s in offered)
            raise ToolError(f"We don't offer {service[:60]!r}. We offer: {names}.")
        return ServiceChoice(match.name, minutes or match.duration_minutes)
    # Without a catalogue the caller's words are only a note for staff: stored as the service,
    # they would be read out to whoever holds the booking later.
    return ServiceChoice(None, minutes or org.appointment_minutes, asked=service)


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
) -> list[ResourceSchedule]:
    """Hours, exceptions and busy ranges of `resources` for local dates first..last.

    `busy_between` narrows the busy ranges to those overlapping it (enough to check one start).
    """
    zone = org.zone
    # A day of margin on both sides: buffers and long appointments cross midnight.
    busy_from, busy_to = busy_between or (
        _midnight(first - timedelta(days=1), zone),
        _midnight(last + timedelta(days=2), zone),
    )
    weekly: dict[int, dict] = {r.id: {} for r in resources}
    exceptions: dict[int, dict] = {r.id: {} for r in resources}
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
    for row in rows.hours:
        weekly[row.resource_id].setdefault(row.weekday, []).append((row.opens, row.closes))
    for row in rows.exceptions:
        ranges = exceptions[row.resource_id].setdefault(row.day, [])
        if row.opens is not None:  # a row without hours means closed all day
            ranges.append((row.opens, row.closes))
            ranges.sort()
    for row in rows.busy:
        busy[row.resource_id].append((row.starts_at, row.blocked_until))
    return [
        ResourceSchedule(r.id, r.name, weekly[r.id], exceptions[r.id], busy[r.id])
        for r in resources
    ]


def describe_slots(slots: list[Slot], zone: ZoneInfo) -> str:
    """'Tuesday, December 1, 2026 at 10:30 AM (2026-12-01T10:30:00-05:00), ...'."""
    parts = []
    for slot in slots:
        local = slot.start.astimezone(zone)
        parts.append(f"{spoken_datetime(local)} ({local.isoformat()})")
    if len(parts) > 1:
        return ", ".join(parts[:-1]) + " or " + parts[-1]
    return parts[0] if parts else ""


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
    """Up to three bookable starts nearest to `around`."""
    zone = org.zone
    today = now.astimezone(zone).date()
    last = org.rules.latest(now).astimezone(zone).date()
    schedules = load_schedules(
        uow, org, resources, today, last, exclude_appointment=exclude_appointment
    )
    return scheduling.nearest_slots(schedules, org.rules, zone, now, around, duration)


def offer_sentence(slots: list[Slot], zone: ZoneInfo) -> str:
    """The spoken offer of alternatives (or that there are none)."""
    if not slots:
        return "I could not find another free time soon; please ask the business directly."
    if len(slots) == 1:
        return f"The nearest free time is {describe_slots(slots, zone)}."
    return f"The nearest free times are {describe_slots(slots, zone)}."


def reason_sentence(reason: str, org: OrgInfo, start: datetime, now: datetime) -> str:
    """Why `start` cannot be booked, in words."""
    zone = org.zone
    local = start.astimezone(zone)
    rules = org.rules
    sentences = {
        scheduling.PAST: f"{spoken_datetime(local)} is in the past. {today_sentence(zone, now)}",
        scheduling.TOO_SOON: (
            f"{spoken_datetime(local)} is too soon: bookings need at least "
            f"{_minutes_words(rules.min_notice_minutes)} notice."
        ),
        scheduling.BEYOND_HORIZON: (
            f"{spoken_datetime(local)} is too far ahead: we take bookings up to "
            f"{rules.horizon_days} days in advance. {today_sentence(zone, now)}"
        ),
        scheduling.CLOSED_DAY: f"We are closed on {spoken_date(local)}.",
        scheduling.OUTSIDE_HOURS: (
            f"{spoken_time(local)} on {spoken_date(local)} is outside our opening hours."
        ),
        scheduling.OFF_GRID: (
            f"Appointments start every {rules.slot_minutes} minutes, so "
            f"{spoken_time(local)} is not a start time we can offer."
        ),
        scheduling.TAKEN: f"{spoken_datetime(local)} is already taken.",
    }
    return sentences[reason]


def _minutes_words(minutes: int) -> str:
    if minutes % 60 == 0 and minutes >= 60:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minutes"


@dataclass(frozen=True)
class Availability:
    """Free starts in the requested window, or the next day that has room."""

    slots: list[Slot]
    minutes: int
    service: str | None
    first: date
    last: date
    next_day: date | None = None
    next_day_slots: tuple[Slot, ...] = ()


def check_availability(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    *,
    first: date,
    last: date,
    window_start: datetime | None,
    window_end: datetime | None,
    service: str | None,
    minutes: int | None,
    resource: str | None,
    now: datetime,
) -> Availability:
    """Up to ten free starts in the window (soonest first); if none, the next day with room."""
    zone = org.zone
    rules = org.rules
    catalogue = load_catalogue(uow, org)
    resources = choose_resources(catalogue, resource)
    choice = choose_service(catalogue, org, service, minutes)
    duration = timedelta(minutes=choice.minutes)
    lo, hi = scheduling.search_window(rules, zone, now, first, last)
    slots: list[Slot] = []
    if lo <= hi:
        schedules = load_schedules(uow, org, resources, lo, hi)
        slots = scheduling.free_slots(
            schedules,
            rules,
            zone,
            now,
            lo,
            hi,
            duration,
            window_start=window_start,
            window_end=window_end,
        )
    result = Availability(slots[: scheduling.MAX_SLOTS], choice.minutes, choice.name, first, last)
    if slots:
        return result
    horizon_day = rules.latest(now).astimezone(zone).date()
    day = max(hi, lo - timedelta(days=1)) + timedelta(days=1)
    while day <= horizon_day:
        chunk_end = min(day + _NEXT_DAY_CHUNK, horizon_day)
        schedules = load_schedules(uow, org, resources, day, chunk_end)
        later = scheduling.free_slots(schedules, rules, zone, now, day, chunk_end, duration)
        if later:
            next_day = later[0].start.astimezone(zone).date()
            same_day = tuple(s for s in later if s.start.astimezone(zone).date() == next_day)
            return Availability(
                [], choice.minutes, choice.name, first, last, next_day, same_day[:3]
            )
        day = chunk_end + timedelta(days=1)
    return result
