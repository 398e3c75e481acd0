"""Scheduling rules as pure functions: working ranges, free slots, why a start is refused.

No database here: the caller loads each resource's hours, exceptions and busy ranges for a
window (use_cases/availability.py) and these functions decide. The exclusion constraint in
PostgreSQL remains the guard against double booking; these only shape answers and offers.

Conventions:
- times are aware datetimes; weekly hours and exceptions are local wall times in the
  organization's zone, converted per day with zoneinfo (so DST days are right);
- a start is on the grid when its local minute of the day is a multiple of slot_minutes;
- an appointment blocks its resource over [start, end + buffer), exactly the range the
  exclusion constraint compares.
"""

from __future__ import annotations

import bisect
import time as time_module
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from booking_service.domain.errors import OutOfTime
from booking_service.domain.slots import Slot

MAX_SLOTS = 10

# Why a requested start cannot be booked (checked in this order).
PAST = "past"
TOO_SOON = "too_soon"
BEYOND_HORIZON = "beyond_horizon"
CLOSED_DAY = "closed_day"
OUTSIDE_HOURS = "outside_hours"
OFF_GRID = "off_grid"
TAKEN = "taken"


@dataclass(frozen=True)
class Rules:
    """An organization's booking rules."""

    slot_minutes: int = 15
    min_notice_minutes: int = 60
    horizon_days: int = 60
    buffer_minutes: int = 0

    @property
    def buffer(self) -> timedelta:
        return timedelta(minutes=self.buffer_minutes)

    def earliest(self, now: datetime) -> datetime:
        return now + timedelta(minutes=self.min_notice_minutes)

    def latest(self, now: datetime) -> datetime:
        return now + timedelta(days=self.horizon_days)


Range = tuple[time, time]


@dataclass
class ResourceSchedule:
    """One resource: weekly ranges (0 = Monday), dated exceptions ([] = closed), busy ranges."""

    id: int
    name: str
    weekly: dict[int, list[Range]] = field(default_factory=dict)
    exceptions: dict[date, list[Range]] = field(default_factory=dict)
    busy: list[tuple[datetime, datetime]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.busy.sort()
        self._busy_starts = [start for start, _ in self.busy]
        # Running maximum of busy ends, so one bisect answers "is anything still busy here?".
        self._max_end: list[datetime] = []
        for _, end in self.busy:
            self._max_end.append(max(end, self._max_end[-1]) if self._max_end else end)

    def ranges_on(self, day: date) -> list[Range]:
        """Local opening ranges on `day`: the exception's if there is one, else the weekly ones."""
        if day in self.exceptions:
            return self.exceptions[day]
        return self.weekly.get(day.weekday(), [])

    def is_free(self, start: datetime, blocked_until: datetime) -> bool:
        """No busy range overlaps [start, blocked_until)."""
        index = bisect.bisect_left(self._busy_starts, blocked_until)
        return index == 0 or self._max_end[index - 1] <= start


def wall_to_aware(day: date, at: time, zone: ZoneInfo) -> datetime | None:
    """The aware instant of a local wall time; None inside a spring-forward gap.

    An ambiguous wall time (fall-back) resolves to its earlier occurrence.
    """
    naive = datetime.combine(day, at)
    aware = naive.replace(tzinfo=zone, fold=0)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        return None
    # UTC from here on: adding a timedelta to a zoneinfo-aware datetime is wall-clock
    # arithmetic, and comparing two with the same zone ignores the DST fold.
    return aware.astimezone(UTC)


def _range_bounds(
    day: date, opens: time, closes: time, zone: ZoneInfo
) -> tuple[datetime, datetime]:
    # Opening/closing inside a DST gap moves to the first existing minute after it.
    def edge(at: time) -> datetime:
        naive = datetime.combine(day, at)
        return naive.replace(tzinfo=zone, fold=0).astimezone(UTC)

    return edge(opens), edge(closes)


_REGULAR_MARGIN = timedelta(hours=3)


def regular_midnight(day: date, zone: ZoneInfo) -> datetime | None:
    """The UTC instant of `day`'s local midnight when the day's UTC offset holds from three
    hours before it to three hours after it (every day but a clock change's), else None.

    On such a day a wall time is that instant plus its minutes: no zone lookup, no gap or
    fold to test. The free-starts function's `regular_midnight` (migration abe15f4c4cbd) is
    the same test in SQL."""
    midnight = datetime.combine(day, time(0))
    following = midnight + timedelta(days=1)
    offset = zone.utcoffset(midnight)
    if not (
        offset
        == zone.utcoffset(midnight - _REGULAR_MARGIN)
        == zone.utcoffset(following)
        == zone.utcoffset(following + _REGULAR_MARGIN)
    ):
        return None
    return wall_to_aware(day, time(0), zone)


def _grid_starts(
    day: date, opens: time, closes: time, zone: ZoneInfo, slot: int, midnight: datetime | None
) -> Iterator[datetime]:
    """The grid starts of one opening range; `midnight` is `regular_midnight(day, zone)`."""
    open_min = opens.hour * 60 + opens.minute
    close_min = closes.hour * 60 + closes.minute
    first = -(-open_min // slot) * slot  # round up to the grid
    if midnight is not None:
        # Two zone conversions and a gap test per start were most of an availability check's
        # time on a day open around the clock on a 5-minute grid (288 starts, #30).
        step = timedelta(minutes=slot)
        start = midnight + timedelta(minutes=first)
        for _ in range(first, close_min, slot):
            yield start
            start += step
        return
    for minute in range(first, close_min, slot):
        candidate = wall_to_aware(day, time(minute // 60, minute % 60), zone)
        if candidate is not None:
            yield candidate


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def free_slots(
    schedules: Iterable[ResourceSchedule],
    rules: Rules,
    zone: ZoneInfo,
    now: datetime,
    first_day: date,
    last_day: date,
    duration: timedelta,
    *,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    enough: int | None = None,
    deadline: float | None = None,
) -> list[Slot]:
    """Bookable starts in [first_day, last_day] (local dates), one per start time.

    When several resources are free at the same start, the first (lowest id) is named.
    Sorted by start. `window_start`/`window_end` narrow the result to [start, end).
    With `enough`, the search stops after the first day by which that many were found (a day's
    starts all precede the next day's, so the first `enough` are exactly those of a full
    search). Past `deadline` (time.monotonic()) it raises OutOfTime: months of 5-minute slots
    over many resources is a lot of arithmetic, and the caller must still hear an answer.
    """
    earliest = rules.earliest(now)
    latest = rules.latest(now)
    if window_start is not None:
        earliest = max(earliest, window_start)
    ordered = sorted(schedules, key=lambda s: s.id)
    buffer, slot = rules.buffer, rules.slot_minutes
    by_start: dict[datetime, Slot] = {}
    for day in _days(first_day, last_day):
        if enough is not None and len(by_start) >= enough:
            break
        if deadline is not None and time_module.monotonic() > deadline:
            raise OutOfTime()
        midnight = regular_midnight(day, zone)  # once a day, not per resource and range
        for schedule in ordered:
            for opens, closes in schedule.ranges_on(day):
                _, close_at = _range_bounds(day, opens, closes, zone)
                for start in _grid_starts(day, opens, closes, zone, slot, midnight):
                    # `start <= now`: check_start calls that past; with no minimum notice the
                    # grid start equal to now was offered and then refused.
                    if start < earliest or start <= now or start > latest:
                        continue
                    if window_end is not None and start >= window_end:
                        continue
                    end = start + duration
                    if end > close_at or not schedule.is_free(start, end + buffer):
                        continue
                    key = start.astimezone(UTC)
                    if key not in by_start:
                        by_start[key] = Slot(start, schedule.id, schedule.name)
    return [by_start[k] for k in sorted(by_start)]


@dataclass(frozen=True)
class StartCheck:
    """The verdict on a requested start: the resources that can take it, or why none can."""

    resources: list[int]
    reason: str | None


def check_start(
    schedules: list[ResourceSchedule],
    rules: Rules,
    zone: ZoneInfo,
    now: datetime,
    start: datetime,
    duration: timedelta,
) -> StartCheck:
    """Decide whether `start` can be booked for `duration`, and on which resources."""
    start = start.astimezone(UTC)
    if start <= now:
        return StartCheck([], PAST)
    if start < rules.earliest(now):
        return StartCheck([], TOO_SOON)
    if start > rules.latest(now):
        return StartCheck([], BEYOND_HORIZON)
    local = start.astimezone(zone)
    day = local.date()
    end = start + duration
    open_any = False
    within_any = False
    free: list[int] = []
    for schedule in schedules:
        for opens, closes in schedule.ranges_on(day):
            open_any = True
            open_at, close_at = _range_bounds(day, opens, closes, zone)
            if not (open_at <= start and end <= close_at):
                continue
            within_any = True
            if schedule.is_free(start, end + rules.buffer):
                free.append(schedule.id)
            break
    if not open_any:
        return StartCheck([], CLOSED_DAY)
    if not within_any:
        return StartCheck([], OUTSIDE_HOURS)
    minute_of_day = local.hour * 60 + local.minute
    if minute_of_day % rules.slot_minutes or local.second or local.microsecond:
        return StartCheck([], OFF_GRID)
    if not free:
        return StartCheck([], TAKEN)
    return StartCheck(free, None)


# Windows of the nearest-start search, in local days (see nearest_slots).
_NEAR_DAYS = timedelta(days=2)
# Anything outside the near window is at least this far from the asked time (two whole days
# either side, less a DST hour and margin): three starts closer than this settle the answer.
_SETTLED = timedelta(hours=36)
_BEFORE, _AFTER = timedelta(days=7), timedelta(days=21)
# Long searches load schedules this many days (plus one) at a time.
_CHUNK = timedelta(days=14)
SEARCH_CHUNK = _CHUNK  # the database's engine loads nothing, but stops as early


def free_slots_in_chunks(
    schedules_for: Callable[[date, date], list[ResourceSchedule]],
    rules: Rules,
    zone: ZoneInfo,
    now: datetime,
    first_day: date,
    last_day: date,
    duration: timedelta,
    *,
    enough: int,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    deadline: float | None = None,
) -> list[Slot]:
    """free_slots over [first_day, last_day], loading the schedules (`schedules_for`) 14 days
    at a time and stopping once `enough` starts are found: a search over months costs the
    days it needed, not the whole range."""
    found: list[Slot] = []
    day = first_day
    while day <= last_day and len(found) < enough:
        chunk_end = min(day + _CHUNK, last_day)
        found += free_slots(
            schedules_for(day, chunk_end),
            rules,
            zone,
            now,
            day,
            chunk_end,
            duration,
            window_start=window_start,
            window_end=window_end,
            enough=enough - len(found),
            deadline=deadline,
        )
        day = chunk_end + timedelta(days=1)
    return found


class WindowSearch(Protocol):
    """Free starts among local dates first..last, as free_slots finds them: one per start
    time, named after the lowest resource id free then. The Python engine below
    (`nearest_slots`) and PostgreSQL's (repositories/free_starts.py) both answer it."""

    def nearest(self, first: date, last: date, around: datetime, limit: int) -> list[Slot]:
        """Up to `limit` of them closest to `around`: by distance, then earlier first."""
        ...

    def earliest(self, first: date, last: date, limit: int) -> list[Slot]:
        """At least the `limit` earliest of them (all if fewer), in any order."""
        ...


class _InPython:
    """WindowSearch by free_slots over schedules loaded by `schedules_for`: the reference
    engine (and the one a slot listing uses)."""

    def __init__(
        self,
        schedules_for: Callable[[date, date], list[ResourceSchedule]],
        rules: Rules,
        zone: ZoneInfo,
        now: datetime,
        duration: timedelta,
        deadline: float | None,
    ):
        self.schedules_for = schedules_for
        self.rules, self.zone, self.now = rules, zone, now
        self.duration, self.deadline = duration, deadline

    def nearest(self, first: date, last: date, around: datetime, limit: int) -> list[Slot]:
        if first > last:
            return []
        slots = free_slots(
            self.schedules_for(first, last),
            self.rules,
            self.zone,
            self.now,
            first,
            last,
            self.duration,
            deadline=self.deadline,
        )
        return closest(slots, around, limit)

    def earliest(self, first: date, last: date, limit: int) -> list[Slot]:
        return free_slots_in_chunks(
            self.schedules_for,
            self.rules,
            self.zone,
            self.now,
            first,
            last,
            self.duration,
            enough=limit,
            deadline=self.deadline,
        )


def closest(slots: list[Slot], around: datetime, limit: int) -> list[Slot]:
    """The `limit` slots nearest to `around`, nearest first (a tie: the earlier first)."""
    return sorted(slots, key=lambda s: (abs((s.start - around).total_seconds()), s.start))[:limit]


def nearest_slots(
    schedules_for: Callable[[date, date], list[ResourceSchedule]],
    rules: Rules,
    zone: ZoneInfo,
    now: datetime,
    around: datetime,
    duration: timedelta,
    *,
    limit: int = 3,
    deadline: float | None = None,
) -> list[Slot]:
    """Up to `limit` bookable starts closest to `around`, computed in Python over the
    schedules `schedules_for(first, last)` loads (every booking of the days searched).

    The reference for the database's engine (repositories/free_starts.py), which refusals
    use: tests/integration/test_free_starts_property.py holds the two to the same answers.
    """
    search = _InPython(schedules_for, rules, zone, now, duration, deadline)
    return nearest_starts(search, rules, zone, now, around, limit=limit, day_first=False)


def nearest_starts(
    search: WindowSearch,
    rules: Rules,
    zone: ZoneInfo,
    now: datetime,
    around: datetime,
    *,
    limit: int = 3,
    day_first: bool = True,
) -> list[Slot]:
    """Up to `limit` bookable starts closest to `around` (before or after), nearest first.

    The search asks for as little as it can, since a refusal's cost is the days it searches
    (the busy ranges of the whole horizon were 0.9 s per refusal with 48,000 future bookings,
    in Python): the asked day first, which settles it when `limit` starts lie nearer than
    either end of that day (#30: a busy day usually has them, and a search costs what it
    spans; a time within an hour of either end skips it, as it could not settle); then two
    days either side, which settles it when they lie within 36 hours; then a
    week before to three weeks after; then the rest of the horizon, 14 days at a time, until
    `limit` are found. `day_first=False` skips the first step (the windows before #30, which
    the reference engine keeps, so that tests hold the step to the answers without it).
    """
    around = around.astimezone(UTC)
    today = now.astimezone(zone).date()
    last_allowed = rules.latest(now).astimezone(zone).date()
    center = min(max(around, now).astimezone(zone).date(), last_allowed)

    inside_by = _inside_day_by(center, zone, around)
    # A time within an hour of the day's ends (or outside the day) is never settled by the
    # day alone, so its search would be thrown away.
    if day_first and center >= today and inside_by > timedelta(0):
        day = search.nearest(center, center, around, limit)
        # Strictly nearer than the day's ends: a start of another day at the same distance
        # could otherwise sort before the last one found.
        if len(day) == limit and abs(day[-1].start - around) < inside_by:
            return day

    near = search.nearest(
        max(today, center - _NEAR_DAYS), min(last_allowed, center + _NEAR_DAYS), around, limit
    )
    if len(near) == limit and abs(near[-1].start - around) <= _SETTLED:
        return near
    first, last = max(today, center - _BEFORE), min(last_allowed, center + _AFTER)
    slots = search.nearest(first, last, around, limit)
    if slots:
        return slots
    # Nothing from a week before to three weeks after: the earliest starts after that.
    return closest(search.earliest(last, last_allowed, limit), around, limit)


def _inside_day_by(day: date, zone: ZoneInfo, at: datetime) -> timedelta:
    """How far the instant `at` lies inside the local `day`, from its nearer end, less an
    hour in case a clock change moves either midnight; negative when it lies outside."""
    begins = datetime.combine(day, time(0), zone).astimezone(UTC)
    ends = datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    return min(at - begins, ends - at) - timedelta(hours=1)


def search_window(
    rules: Rules, zone: ZoneInfo, now: datetime, first: date, last: date
) -> tuple[date, date]:
    """Clamp a requested range of local dates to today..horizon."""
    today = now.astimezone(zone).date()
    last_allowed = rules.latest(now).astimezone(zone).date()
    return max(first, today), min(last, last_allowed)
