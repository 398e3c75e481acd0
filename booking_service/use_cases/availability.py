"""checkAvailability's use case: free starts in a window, or the next day that has room."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from booking_service.domain import scheduling
from booking_service.domain.errors import CalendarUnavailable
from booking_service.domain.scheduling import ResourceSchedule, Slot
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases.catalogue import choose_resources, choose_service, load_catalogue
from booking_service.use_cases.openings import load_schedules
from booking_service.use_cases.orgs import OrgInfo


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
    deadline: float | None = None,
    enough: int = scheduling.MAX_SLOTS,
    next_day: bool = True,
) -> Availability:
    """Up to `enough` (ten) free starts in the window (soonest first); if none (and
    `next_day`), the next day with room.

    Opens and closes its own unit of work (read only: nothing is committed). Loads and
    searches the window 14 days at a time and stops once it has `enough`; past `deadline`
    (time.monotonic()) it raises OutOfTime.
    """
    with uow:
        zone = org.zone
        rules = org.rules
        catalogue = load_catalogue(uow, org)
        resources = choose_resources(catalogue, resource)
        choice = choose_service(catalogue, org, service, minutes)
        duration = timedelta(minutes=choice.minutes)
        lo, hi = scheduling.search_window(rules, zone, now, first, last)

        def schedules_for(first_day: date, last_day: date) -> list[ResourceSchedule]:
            return load_schedules(uow, org, resources, first_day, last_day, now=now)

        slots = scheduling.free_slots_in_chunks(
            schedules_for,
            rules,
            zone,
            now,
            lo,
            hi,
            duration,
            enough=enough,
            window_start=window_start,
            window_end=window_end,
            deadline=deadline,
        )
        result = Availability(slots[:enough], choice.minutes, choice.name, first, last)
        if slots:
            return result
        # The next day with room: the first day (after the window) that has any start.
        later = (
            scheduling.free_slots_in_chunks(
                schedules_for,
                rules,
                zone,
                now,
                max(hi, lo - timedelta(days=1)) + timedelta(days=1),
                rules.latest(now).astimezone(zone).date(),
                duration,
                enough=1,
                deadline=deadline,
            )
            if next_day
            else []
        )
        if later:
            day = later[0].start.astimezone(zone).date()
            same_day = tuple(s for s in later if s.start.astimezone(zone).date() == day)
            return Availability([], choice.minutes, choice.name, first, last, day, same_day[:3])
        # Nothing free: if a calendar that could not be read lately is why, say so rather
        # than "fully booked".
        wanted = {r.id for r in resources}
        if any(
            link.resource_id in wanted and link.stale_at(now) and link.when_stale == "refuse"
            for link in uow.calendars.links(org.id)
        ):
            raise CalendarUnavailable(None)
        return result
