"""Occurrences of the events in an owner's calendar, expanded by our own bounded iterator.

A calendar is hostile input: one 274-byte event (`RRULE:FREQ=SECONDLY`) expanded by a library
that has no budget filled a worker with gigabytes. Here:
- every occurrence in the window counts toward one hard cap per read, free (TRANSPARENT) and
  cancelled ones included: what costs memory is expanding them, not what they mean;
- the steps taken to reach the window count too (an hourly rule that started in 1970);
- rules that repeat every second or minute are refused outright: no real diary has them, and
  even a short window holds too many;
- RECURRENCE-ID overrides replace their instance, EXDATE removes one, RDATE adds one.

Times: a rule on a zoned DTSTART keeps its local time across DST (dateutil's wall-clock
arithmetic on a ZoneInfo datetime); all-day and floating events are read in the
organization's zone. Raises UnreadableCalendar (its message names the event's UID, never its
text) whenever an event cannot be read or the cap is passed: a time we could not read is never
taken as free.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import icalendar
from dateutil import rrule

# Occurrences one read may hold, and the steps one rule may take to reach its window.
MAX_OCCURRENCES = 10_000
MAX_STEPS = 200_000
REFUSED_FREQUENCIES = frozenset({"SECONDLY", "MINUTELY"})


class UnreadableCalendar(ValueError):
    """The calendar's events cannot be turned into busy times; the message says which and why
    (never the event's text)."""


@dataclass(frozen=True)
class Occurrence:
    """One instance of an event: the component that describes it (an override's own, when
    there is one) and its UTC span."""

    component: icalendar.Component
    starts_at: datetime
    ends_at: datetime


def _uid(component: icalendar.Component) -> str:
    return str(component.get("UID", ""))[:120] or "(no UID)"


def _local(value: date | datetime, zone: ZoneInfo) -> datetime:
    """An aware datetime: a date is local midnight in `zone`, floating time is `zone`'s."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time.min)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value


def _duration(component: icalendar.Component, start: date | datetime) -> timedelta | None:
    if component.get("DTEND") is not None:
        return component.decoded("DTEND") - start
    if component.get("DURATION") is not None:
        return component.decoded("DURATION")
    if isinstance(start, datetime):
        return None  # RFC 5545: a timed event without end or duration takes no time
    return timedelta(days=1)  # an all-day event without an end is one day


def _dates(component: icalendar.Component, name: str) -> list[date | datetime]:
    """Every value of EXDATE/RDATE (each may appear several times, each with several values)."""
    found = component.get(name)
    if found is None:
        return []
    values: list[date | datetime] = []
    for prop in found if isinstance(found, list) else [found]:
        for item in prop.dts:
            if isinstance(item.dt, date):  # a PERIOD in RDATE is a tuple: not supported
                values.append(item.dt)
    return values


class _Budget:
    """The read's shared cap on occurrences."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0

    def take(self, component: icalendar.Component) -> None:
        self.used += 1
        if self.used > self.limit:
            raise UnreadableCalendar(
                f"more than {self.limit:,} occurrences in the window (an event repeats too "
                f"often: {_uid(component)})"
            )


def _rule_starts(
    component: icalendar.Component, start: date | datetime, zone: ZoneInfo
) -> Iterator[datetime]:
    """The starts of a master event (RRULE and RDATE), in order, as aware local datetimes;
    lazily, with every step counted."""
    anchor = _local(start, zone)
    streams: list[Iterator[datetime]] = []
    rules = component.get("RRULE")
    for rule in rules if isinstance(rules, list) else ([rules] if rules is not None else []):
        freq = str((rule.get("FREQ") or [""])[0]).upper()
        if freq in REFUSED_FREQUENCIES:
            raise UnreadableCalendar(
                f"an event repeats too often: {_uid(component)} (FREQ={freq} is not supported)"
            )
        text = rule.to_ical().decode()
        # dateutil wants UNTIL in UTC when DTSTART is aware; a date-only UNTIL means the end of
        # that local day.
        parts = []
        for part in text.split(";"):
            key, _, value = part.partition("=")
            if key.upper() == "UNTIL":
                given = icalendar.vDDDTypes.from_ical(value)
                until = _local(given, zone)
                if not isinstance(given, datetime):
                    until = until + timedelta(days=1) - timedelta(seconds=1)
                value = until.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
            parts.append(f"{key}={value}")
        streams.append(iter(rrule.rrulestr(";".join(parts), dtstart=anchor, cache=False)))
    if not streams:
        streams.append(iter([anchor]))
    streams.append(iter(sorted(_local(d, zone) for d in _dates(component, "RDATE"))))
    steps = 0
    previous = None
    for begins in heapq.merge(*streams, key=lambda d: d.astimezone(UTC)):
        steps += 1
        if steps > MAX_STEPS:
            raise UnreadableCalendar(
                f"an event repeats too often since too long ago: {_uid(component)}"
            )
        if begins == previous:  # an RDATE that repeats a rule's own instance
            continue
        previous = begins
        yield begins


def _instants(component: icalendar.Component, zone: ZoneInfo) -> set[datetime]:
    return {_local(d, zone).astimezone(UTC) for d in _dates(component, "EXDATE")}


@contextmanager
def _reading(component: icalendar.Component) -> Iterator[None]:
    """Whatever goes wrong reading one event is an UnreadableCalendar naming it."""
    try:
        yield
    except UnreadableCalendar:
        raise
    except Exception as exc:
        raise UnreadableCalendar(
            f"the event {_uid(component)} could not be read ({type(exc).__name__})"
        ) from exc


def occurrences(
    calendar: icalendar.Calendar,
    zone: ZoneInfo,
    start: datetime,
    end: datetime,
    budget: _Budget | None = None,
) -> Iterator[Occurrence]:
    """Every occurrence of the calendar's events that overlaps [start, end), in no particular
    order. `budget` is shared across the calendars of one read."""
    budget = budget or _Budget(MAX_OCCURRENCES)
    masters: list[icalendar.Component] = []
    overrides: dict[tuple[str, datetime], icalendar.Component] = {}
    for component in calendar.walk("VEVENT"):
        with _reading(component):
            if component.get("RECURRENCE-ID") is not None:
                key = _local(component.decoded("RECURRENCE-ID"), zone).astimezone(UTC)
                overrides[(str(component.get("UID", "")), key)] = component
            else:
                masters.append(component)
    for component in masters:
        with _reading(component):
            yield from _expand(component, zone, start, end, overrides, budget)
    for component in overrides.values():
        with _reading(component):
            span = _span(component, component.decoded("DTSTART"), zone)
        if span is not None and span[0] < end and span[1] > start:
            budget.take(component)
            yield Occurrence(component, *span)


def _span(
    component: icalendar.Component, begins: date | datetime, zone: ZoneInfo
) -> tuple[datetime, datetime] | None:
    if component.get("DTSTART") is None:
        return None
    length = _duration(component, component.decoded("DTSTART"))
    if length is None:
        return None
    first = _local(begins, zone)
    # An all-day length is whole local days (23 or 25 hours across DST), a timed one elapsed.
    last = (
        _local(first.date() + timedelta(days=length.days), zone)
        if not isinstance(component.decoded("DTSTART"), datetime) and not length.seconds
        else first + length
    )
    first, last = first.astimezone(UTC), last.astimezone(UTC)
    return (first, last) if last > first else None


def _expand(
    component: icalendar.Component,
    zone: ZoneInfo,
    start: datetime,
    end: datetime,
    overrides: dict[tuple[str, datetime], icalendar.Component],
    budget: _Budget,
) -> Iterator[Occurrence]:
    if component.get("DTSTART") is None:
        return
    dtstart = component.decoded("DTSTART")
    length = _duration(component, dtstart)
    if length is None or length <= timedelta(0):
        # Takes no time: never busy, but a rule on it still costs steps to walk; skip it.
        return
    uid = str(component.get("UID", ""))
    excluded = _instants(component, zone)
    # An instance that began before the window but lasts into it still counts.
    reach = start - length - timedelta(days=1)
    for begins in _rule_starts(component, dtstart, zone):
        instant = begins.astimezone(UTC)
        if instant >= end:
            break
        if instant < reach or instant in excluded or (uid, instant) in overrides:
            continue
        span = _span(component, begins, zone)
        if span is None or span[1] <= start or span[0] >= end:
            continue
        budget.take(component)
        yield Occurrence(component, *span)


def new_budget(limit: int = MAX_OCCURRENCES) -> _Budget:
    """A cap shared by the calendars of one read."""
    return _Budget(limit)
