"""The scheduler's pure rules, including property tests (hypothesis) of every offered slot."""

from __future__ import annotations

import time as time_module
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from booking_service.domain import scheduling
from booking_service.domain.errors import OutOfTime
from booking_service.domain.scheduling import ResourceSchedule, Rules, check_start, free_slots

NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # a Wednesday, 09:00 in New York
WEEKDAYS_9_TO_5 = {d: [(time(9), time(17))] for d in range(5)}


def at(day: str, clock: str, zone: ZoneInfo = NY) -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=zone)


def test_a_day_with_two_ranges_offers_only_inside_them():
    schedule = ResourceSchedule(1, "Main", {0: [(time(9), time(12)), (time(13), time(17))]})
    slots = free_slots(
        [schedule],
        Rules(slot_minutes=60),
        NY,
        NOW,
        date(2026, 11, 30),
        date(2026, 11, 30),
        timedelta(minutes=60),
    )

    assert [s.start.astimezone(NY).hour for s in slots] == [9, 10, 11, 13, 14, 15, 16]


def test_busy_ranges_and_buffers_are_avoided():
    # Busy ranges are [start, blocked_until): a 10:00-10:30 booking plus its 15-minute buffer.
    busy = [(at("2026-11-30", "10:00"), at("2026-11-30", "10:45"))]
    schedule = ResourceSchedule(1, "Main", WEEKDAYS_9_TO_5, busy=busy)
    rules = Rules(slot_minutes=15, buffer_minutes=15)
    slots = free_slots(
        [schedule], rules, NY, NOW, date(2026, 11, 30), date(2026, 11, 30), timedelta(minutes=30)
    )
    starts = {s.start.astimezone(NY).strftime("%H:%M") for s in slots}

    # A 30-minute booking plus its 15-minute buffer must end by 10:00, and the busy one's
    # buffer keeps 10:30-10:45 free.
    assert "09:15" in starts and "09:30" not in starts
    assert "10:30" not in starts and "10:45" in starts


def test_closed_day_exception_and_changed_hours():
    schedule = ResourceSchedule(
        1,
        "Main",
        WEEKDAYS_9_TO_5,
        exceptions={date(2026, 11, 30): [], date(2026, 12, 1): [(time(10), time(11))]},
    )
    rules = Rules(slot_minutes=30)
    closed = free_slots(
        [schedule], rules, NY, NOW, date(2026, 11, 30), date(2026, 11, 30), timedelta(minutes=30)
    )
    short = free_slots(
        [schedule], rules, NY, NOW, date(2026, 12, 1), date(2026, 12, 1), timedelta(minutes=30)
    )

    assert closed == []
    assert [s.start.astimezone(NY).strftime("%H:%M") for s in short] == ["10:00", "10:30"]
    assert (
        check_start(
            [schedule], rules, NY, NOW, at("2026-11-30", "10:00"), timedelta(minutes=30)
        ).reason
        == scheduling.CLOSED_DAY
    )


def test_reasons_for_refusing_a_start():
    schedule = ResourceSchedule(
        1, "Main", WEEKDAYS_9_TO_5, busy=[(at("2026-12-01", "10:00"), at("2026-12-01", "10:30"))]
    )
    rules = Rules(slot_minutes=15, min_notice_minutes=120, horizon_days=30)
    half_hour = timedelta(minutes=30)

    def reason(start):
        return check_start([schedule], rules, NY, NOW, start, half_hour).reason

    assert reason(at("2026-11-25", "08:00")) == scheduling.PAST
    assert reason(at("2026-11-25", "10:00")) == scheduling.TOO_SOON
    assert reason(at("2027-02-01", "10:00")) == scheduling.BEYOND_HORIZON
    assert reason(at("2026-11-28", "10:00")) == scheduling.CLOSED_DAY  # Saturday
    assert reason(at("2026-12-01", "16:45")) == scheduling.OUTSIDE_HOURS  # ends after 17:00
    assert reason(at("2026-12-01", "11:10")) == scheduling.OFF_GRID
    assert reason(at("2026-12-01", "10:15")) == scheduling.TAKEN
    assert reason(at("2026-12-01", "10:30")) is None


def test_the_first_free_resource_is_named_once_per_start():
    a = ResourceSchedule(
        1, "Ana", WEEKDAYS_9_TO_5, busy=[(at("2026-12-01", "09:00"), at("2026-12-01", "10:00"))]
    )
    b = ResourceSchedule(2, "Ben", WEEKDAYS_9_TO_5)
    slots = free_slots(
        [b, a],
        Rules(slot_minutes=60),
        NY,
        NOW,
        date(2026, 12, 1),
        date(2026, 12, 1),
        timedelta(minutes=60),
    )

    assert [(s.start.astimezone(NY).hour, s.resource_name) for s in slots[:2]] == [
        (9, "Ben"),
        (10, "Ana"),
    ]


def test_nearest_slots_are_sorted_by_distance():
    schedule = ResourceSchedule(1, "Main", WEEKDAYS_9_TO_5)
    around = at("2026-12-01", "12:10")
    asked: list[tuple[date, date]] = []

    def schedules_for(first: date, last: date) -> list[ResourceSchedule]:
        asked.append((first, last))
        return [schedule]

    slots = scheduling.nearest_slots(
        schedules_for, Rules(slot_minutes=60), NY, NOW, around, timedelta(minutes=60)
    )

    assert [s.start.astimezone(NY).hour for s in slots] == [12, 13, 11]
    # Three starts within hours: two days either side was all it had to load, not the horizon.
    assert asked == [(date(2026, 11, 29), date(2026, 12, 3))]


def _day_first(around: datetime, schedule: ResourceSchedule, rules: Rules):
    """nearest_starts with the asked day first (#30): (slots, windows searched)."""
    asked: list[tuple[date, date]] = []

    def schedules_for(first: date, last: date) -> list[ResourceSchedule]:
        asked.append((first, last))
        return [schedule]

    search = scheduling._InPython(schedules_for, rules, NY, NOW, timedelta(minutes=60), None)
    return scheduling.nearest_starts(search, rules, NY, NOW, around), asked


def test_the_asked_day_alone_settles_three_starts_nearer_than_its_ends():
    schedule = ResourceSchedule(1, "Main", WEEKDAYS_9_TO_5)
    rules = Rules(slot_minutes=60)

    around = at("2026-12-01", "12:10")
    slots, asked = _day_first(around, schedule, rules)

    assert [s.start.astimezone(NY).hour for s in slots] == [12, 13, 11]
    assert asked == [(date(2026, 12, 1), date(2026, 12, 1))]
    # The same answer as the windows before #30 (the reference engine's).
    assert slots == scheduling.nearest_slots(
        lambda first, last: [schedule], rules, NY, NOW, around, timedelta(hours=1)
    )


def test_a_start_nearer_on_the_next_day_is_not_missed():
    # Asked at 22:00 on a day open until 17:00 and the next from 00:00: the starts of the next
    # morning are nearer than the afternoon's, so the asked day alone cannot settle it.
    hours = {1: [(time(9), time(17))], 2: [(time(0), time(17))]}  # Tue, Wed
    schedule = ResourceSchedule(1, "Main", hours)
    rules = Rules(slot_minutes=60)

    slots, asked = _day_first(at("2026-12-01", "22:00"), schedule, rules)

    assert [s.start.astimezone(NY).isoformat() for s in slots] == [
        "2026-12-02T00:00:00-05:00",
        "2026-12-02T01:00:00-05:00",
        "2026-12-02T02:00:00-05:00",
    ]
    assert asked[0] == (date(2026, 12, 1), date(2026, 12, 1)) and len(asked) == 2


def test_nearest_slots_widen_only_as_far_as_needed():
    # Fully booked until 2026-12-20 (busy), free after: the search widens to a week before
    # and three weeks after, then goes on 14 days at a time until three are found.
    busy = [(at("2026-11-01", "00:00"), at("2026-12-21", "00:00"))]
    schedule = ResourceSchedule(1, "Main", WEEKDAYS_9_TO_5, busy=busy)
    asked: list[tuple[date, date]] = []

    def schedules_for(first: date, last: date) -> list[ResourceSchedule]:
        asked.append((first, last))
        return [schedule]

    around = at("2026-12-01", "12:00")
    rules = Rules(slot_minutes=60, horizon_days=365)
    slots = scheduling.nearest_slots(schedules_for, rules, NY, NOW, around, timedelta(hours=1))

    assert [s.start.astimezone(NY).isoformat() for s in slots] == [
        "2026-12-21T09:00:00-05:00",
        "2026-12-21T10:00:00-05:00",
        "2026-12-21T11:00:00-05:00",
    ]
    assert asked == [
        (date(2026, 11, 29), date(2026, 12, 3)),
        (date(2026, 11, 25), date(2026, 12, 22)),  # from today: nothing before it
    ]


def test_free_slots_stop_at_the_day_that_gives_enough():
    visited: list[date] = []

    class Counting(ResourceSchedule):
        def ranges_on(self, day: date):
            visited.append(day)
            return super().ranges_on(day)

    schedule = Counting(1, "Main", WEEKDAYS_9_TO_5)
    first = date(2026, 12, 1)
    slots = free_slots(
        [schedule],
        Rules(slot_minutes=15),
        NY,
        NOW,
        first,
        first + timedelta(days=60),
        timedelta(minutes=30),
        enough=10,
    )

    assert len(slots) >= 10 and visited == [first]


def test_free_slots_past_the_deadline_raise_out_of_time():
    with pytest.raises(OutOfTime):
        free_slots(
            [ResourceSchedule(1, "Main", WEEKDAYS_9_TO_5)],
            Rules(),
            NY,
            NOW,
            date(2026, 12, 1),
            date(2027, 3, 1),
            timedelta(minutes=30),
            deadline=time_module.monotonic() - 1,
        )


# --- daylight saving time -----------------------------------------------------------------


def open_all_day() -> ResourceSchedule:
    return ResourceSchedule(1, "Night", {d: [(time(0), time(23, 59))] for d in range(7)})


def local_starts(zone: ZoneInfo, day: date) -> list[str]:
    rules = Rules(slot_minutes=30, min_notice_minutes=0, horizon_days=700)
    slots = free_slots([open_all_day()], rules, zone, NOW, day, day, timedelta(minutes=30))
    return [s.start.astimezone(zone).isoformat() for s in slots]


def test_spring_forward_gap_is_never_offered_in_new_york_and_london():
    ny = local_starts(NY, date(2027, 3, 14))
    london = local_starts(LONDON, date(2027, 3, 28))

    assert not any("T02:" in s for s in ny)
    assert "2027-03-14T01:30:00-05:00" in ny and "2027-03-14T03:00:00-04:00" in ny
    assert not any("T01:" in s for s in london)
    assert "2027-03-28T02:00:00+01:00" in london


def test_fall_back_hour_is_offered_once_at_its_first_occurrence():
    ny = local_starts(NY, date(2027, 11, 7))
    london = local_starts(LONDON, date(2027, 10, 31))

    assert [s for s in ny if "T01:" in s] == [
        "2027-11-07T01:00:00-04:00",
        "2027-11-07T01:30:00-04:00",
    ]
    assert [s for s in london if "T01:" in s] == [
        "2027-10-31T01:00:00+01:00",
        "2027-10-31T01:30:00+01:00",
    ]


@pytest.mark.parametrize(
    "zone", ["America/New_York", "Europe/London", "Australia/Lord_Howe", "America/Santiago"]
)
def test_a_regular_days_starts_are_its_midnight_plus_their_minutes(zone):
    """Grid starts skip the zone on a day whose offset holds (#30): every quarter hour of a
    year, the instant so found is the one the zone gives, and the days it calls irregular are
    the clock changes' (Lord Howe moves by half an hour, Santiago at midnight)."""
    tz = ZoneInfo(zone)
    irregular = []
    day = date(2027, 1, 1)
    while day.year == 2027:
        midnight = scheduling.regular_midnight(day, tz)
        if midnight is None:
            irregular.append(day)
        else:
            for minute in range(0, 24 * 60, 15):
                wall = time(minute // 60, minute % 60)
                assert midnight + timedelta(minutes=minute) == scheduling.wall_to_aware(
                    day, wall, tz
                ), (day, wall)
        day += timedelta(days=1)
    changes = {
        d
        for d in (date(2027, 1, 1) + timedelta(days=n) for n in range(366))
        if d.year == 2027
        and tz.utcoffset(datetime.combine(d, time(0)))
        != tz.utcoffset(datetime.combine(d + timedelta(days=1), time(0)))
    }
    assert changes and changes <= set(irregular), (changes, irregular)
    assert len(irregular) <= 3 * len(changes)  # the day of a change and its neighbours only


# --- properties -----------------------------------------------------------------------------

slot_sizes = st.sampled_from([5, 10, 15, 20, 30, 45, 60])
zones = st.sampled_from([NY, LONDON, ZoneInfo("Asia/Kolkata"), ZoneInfo("UTC")])


@st.composite
def weekly_hours(draw):
    weekly = {}
    for day in range(7):
        ranges = []
        minute = draw(st.integers(0, 12 * 60))
        for _ in range(draw(st.integers(0, 3))):
            opens = minute + draw(st.integers(0, 120))
            closes = opens + draw(st.integers(15, 300))
            if closes >= 24 * 60:
                break
            ranges.append((time(opens // 60, opens % 60), time(closes // 60, closes % 60)))
            minute = closes
        if ranges:
            weekly[day] = ranges
    return weekly


@st.composite
def scenarios(draw):
    zone = draw(zones)
    rules = Rules(
        slot_minutes=draw(slot_sizes),
        min_notice_minutes=draw(st.integers(0, 600)),
        horizon_days=draw(st.integers(1, 20)),
        buffer_minutes=draw(st.sampled_from([0, 5, 10, 15, 30])),
    )
    now = datetime(2026, 10, 20, tzinfo=UTC) + timedelta(
        minutes=draw(st.integers(0, 200 * 24 * 60))
    )
    today = now.astimezone(zone).date()
    resources = []
    for rid in range(1, draw(st.integers(1, 3)) + 1):
        exceptions = {}
        for _ in range(draw(st.integers(0, 3))):
            day = today + timedelta(days=draw(st.integers(0, 20)))
            exceptions[day] = draw(
                st.sampled_from(
                    [[], [(time(10), time(12))], [(time(8), time(9)), (time(14), time(18))]]
                )
            )
        busy = []
        for _ in range(draw(st.integers(0, 12))):
            start = now + timedelta(minutes=draw(st.integers(-600, 20 * 24 * 60)))
            busy.append((start, start + timedelta(minutes=draw(st.integers(5, 240)))))
        resources.append(ResourceSchedule(rid, f"R{rid}", draw(weekly_hours()), exceptions, busy))
    duration = timedelta(minutes=draw(st.sampled_from([15, 30, 45, 60, 90])))
    first = today + timedelta(days=draw(st.integers(-1, 10)))
    last = first + timedelta(days=draw(st.integers(0, 10)))
    return zone, rules, now, resources, duration, first, last


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_every_offered_slot_obeys_every_rule(scenario):
    zone, rules, now, resources, duration, first, last = scenario
    slots = free_slots(resources, rules, zone, now, first, last, duration)
    by_id = {r.id: r for r in resources}

    assert [s.start for s in slots] == sorted(s.start for s in slots)
    assert len({s.start for s in slots}) == len(slots)
    for slot in slots:
        resource = by_id[slot.resource_id]
        local = slot.start.astimezone(zone)
        end = slot.start + duration
        # notice and horizon
        assert slot.start >= now + timedelta(minutes=rules.min_notice_minutes)
        assert slot.start <= now + timedelta(days=rules.horizon_days)
        # the grid, in local wall time
        assert (local.hour * 60 + local.minute) % rules.slot_minutes == 0 and local.second == 0
        assert first <= local.date() <= last
        # inside one working range of that day (the exception's ranges if there is one)
        ranges = resource.exceptions.get(local.date(), resource.weekly.get(local.weekday(), []))
        assert any(
            datetime.combine(local.date(), o, zone) <= slot.start
            and end <= datetime.combine(local.date(), c, zone)
            for o, c in ranges
        )
        # no overlap with any busy range, buffers included
        blocked_until = end + timedelta(minutes=rules.buffer_minutes)
        assert all(
            b_end <= slot.start or blocked_until <= b_start for b_start, b_end in resource.busy
        )
        # and the booking check agrees: the slot can be booked on the named resource
        verdict = check_start(resources, rules, zone, now, slot.start, duration)
        assert verdict.reason is None and slot.resource_id in verdict.resources


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_booking_check_never_accepts_a_busy_start_on_its_resource(scenario):
    zone, rules, now, resources, duration, _, _ = scenario
    for resource in resources:
        for busy_start, _ in resource.busy:
            verdict = check_start(resources, rules, zone, now, busy_start, duration)
            assert resource.id not in verdict.resources


def test_nearest_slots_go_on_in_chunks_past_three_weeks():
    busy = [(at("2026-11-01", "00:00"), at("2027-01-20", "00:00"))]
    schedule = ResourceSchedule(1, "Main", WEEKDAYS_9_TO_5, busy=busy)
    asked: list[tuple[date, date]] = []

    def schedules_for(first: date, last: date) -> list[ResourceSchedule]:
        asked.append((first, last))
        return [schedule]

    rules = Rules(slot_minutes=60, horizon_days=365)
    around = at("2026-12-01", "12:00")
    slots = scheduling.nearest_slots(schedules_for, rules, NY, NOW, around, timedelta(hours=1))

    assert slots[0].start.astimezone(NY).isoformat() == "2027-01-20T09:00:00-05:00"
    assert asked[2:] == [
        (date(2026, 12, 22), date(2027, 1, 5)),
        (date(2027, 1, 6), date(2027, 1, 20)),
    ]
