"""The database's nearest free starts against the Python engine's, over random diaries (#30).

A refusal's alternatives are computed in PostgreSQL (repositories/free_starts.py); the Python
engine (domain/scheduling.nearest_slots over every booking of the days searched) is the
reference. Each example writes a random diary into one transaction of a real PostgreSQL and
asks both for the three nearest starts to a random time; the transaction is rolled back.

Random: weekly hours (several ranges a day, minutes off the grid, seconds, hours through the
night of a clock change), dated exceptions (closed days, other hours), bookings (cancelled
ones too, buffers longer or shorter than today's, one excluded as a reschedule excludes its
own), busy times of calendars that block or not, fresh or stale, refusing or booking when
stale; several resources, some not asked about; rules (grid, notice, horizon, buffer), the
duration, the asked time (before now, beyond the horizon, off the grid), and "now" around
the clock changes of Europe/London and America/New_York (and UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from booking_service.domain.scheduling import Rules
from booking_service.persistence.repositories.schedule import ResourceRow
from booking_service.use_cases.openings import alternatives, alternatives_in_python
from booking_service.use_cases.orgs import OrgInfo

ZONES = ["Europe/London", "America/New_York", "UTC"]
# The days of 2027 whose night changes the clock (UTC: an ordinary day).
TRANSITIONS = {
    "Europe/London": [date(2027, 3, 28), date(2027, 10, 31)],
    "America/New_York": [date(2027, 3, 14), date(2027, 11, 7)],
    "UTC": [date(2027, 3, 28)],
}
# Opening hours through the night of a change: opening or closing in the skipped hour or in
# the repeated one.
NIGHT_RANGES = [
    (time(0), time(3)),
    (time(1), time(2)),
    (time(1, 30), time(4)),
    (time(0, 30), time(1, 30)),
    (time(0, 45), time(2, 30)),
    (time(2, 15), time(6)),
    (time(0), time(1, 45)),
    (time(1, 15), time(1, 50)),
    (time(0, 15), time(2, 40)),
    (time(0), time(23, 55)),
]


def _minute_of_day() -> st.SearchStrategy[int]:
    # Mostly on a 5-minute grid, sometimes anywhere; the night of a clock change often.
    return st.one_of(
        st.integers(0, 287).map(lambda i: i * 5),
        st.integers(0, 1439),
        st.integers(0, 23).map(lambda h: h * 60),
        st.sampled_from([0, 60, 90, 120, 150, 180, 30]),
    )


@st.composite
def _range(draw) -> tuple[time, time]:
    a, b = draw(_minute_of_day()), draw(_minute_of_day())
    if a == b:
        b = min(a + 5, 1439)
        if a == b:
            a -= 5
    lo, hi = min(a, b), max(a, b)
    if draw(st.booleans()):
        return draw(st.sampled_from(NIGHT_RANGES))
    seconds = draw(st.sampled_from([0, 0, 0, 30]))
    return time(lo // 60, lo % 60), time(hi // 60, hi % 60, seconds if hi < 1439 else 0)


@dataclass
class Diary:
    zone: str
    now: datetime
    rules: Rules
    resources: int
    asked: list[int]  # indexes of the resources asked about
    weekly: list[tuple[int, int, time, time]]  # resource, weekday, opens, closes
    exceptions: list[tuple[int, int, tuple[time, time] | None]]  # resource, day offset, hours
    bookings: list[tuple[int, int, int, int, str]]  # resource, minutes from now, length, extra
    calendars: list[tuple[int, bool, str, int | None]]  # resource, block, when_stale, age
    busy: list[tuple[int, int, int]]  # calendar index, minutes from now, length
    around_minutes: int
    duration: int
    exclude: int | None  # index of a booking


@st.composite
def diaries(draw, night_of_change: bool = False) -> Diary:
    """A random diary; with `night_of_change`, one asked about around the night its clock
    changes, open through that night every day, with "now" before it."""
    zone = draw(st.sampled_from(ZONES[:2] if night_of_change else ZONES))
    night = datetime.combine(
        draw(st.sampled_from(TRANSITIONS[zone])), time(), ZoneInfo(zone)
    ).astimezone(UTC)
    now = night + timedelta(
        minutes=draw(st.integers(-3 * 1440, -60 if night_of_change else 1440)),
        seconds=draw(st.sampled_from([0, 17])),
    )
    rules = Rules(
        slot_minutes=draw(st.sampled_from([5, 10, 15, 20, 30, 45, 60, 90])),
        min_notice_minutes=draw(st.sampled_from([0, 0, 30, 60, 240, 1440])),
        horizon_days=draw(st.sampled_from([1, 3, 14, 40, 60])),
        buffer_minutes=draw(st.sampled_from([0, 0, 5, 10, 30, 240])),
    )
    resources = draw(st.integers(1, 3))
    asked = draw(
        st.lists(st.integers(0, resources - 1), min_size=1, max_size=resources, unique=True)
    )
    weekly = draw(
        st.lists(
            st.tuples(st.integers(0, resources - 1), st.integers(0, 6), _range()).map(
                lambda t: (t[0], t[1], *t[2])
            ),
            max_size=12,
        )
    )
    # Most diaries keep hours every day (then the random ones add to them).
    for resource in range(resources):
        if night_of_change or draw(st.integers(0, 3)):
            opens, closes = draw(st.sampled_from(NIGHT_RANGES) if night_of_change else _range())
            weekly += [(resource, weekday, opens, closes) for weekday in range(7)]
    exceptions = draw(
        st.lists(
            st.tuples(
                st.integers(0, resources - 1),
                st.integers(-2, 30),
                st.one_of(st.none(), _range()),
            ),
            max_size=6,
        )
    )
    bookings = draw(
        st.lists(
            st.tuples(
                st.integers(0, resources - 1),
                st.integers(-2 * 1440, 20 * 1440),
                st.sampled_from([5, 15, 30, 45, 60, 120, 600]),
                st.sampled_from([0, 0, 5, 30]),
                st.sampled_from(["booked", "booked", "completed", "cancelled"]),
            ),
            max_size=40,
        )
    )
    calendars = draw(
        st.lists(
            st.tuples(
                st.integers(0, resources - 1),
                st.booleans(),
                st.sampled_from(["refuse", "book"]),
                st.one_of(st.none(), st.sampled_from([0, 5, 60, 100000])),
            ),
            max_size=3,
        )
    )
    busy = (
        draw(
            st.lists(
                st.tuples(
                    st.integers(0, len(calendars) - 1),
                    st.integers(-1440, 20 * 1440),
                    st.sampled_from([5, 30, 60, 600, 3000]),
                ),
                max_size=10,
            )
        )
        if calendars
        else []
    )
    return Diary(
        zone=zone,
        now=now,
        rules=rules,
        resources=resources,
        asked=asked,
        weekly=weekly,
        exceptions=exceptions,
        bookings=bookings,
        calendars=calendars,
        busy=busy,
        around_minutes=draw(
            st.integers(2 if night_of_change else 0, 2).flatmap(
                lambda branch: [
                    st.integers(-3000, 70 * 1440),
                    st.integers(0, 3 * 1440).map(lambda m: m - m % 5),
                    # the night of the change
                    st.integers(0, 240 if night_of_change else 360).map(
                        lambda m: int((night - now).total_seconds() // 60) + m
                    ),
                ][branch]
            )
        ),
        duration=draw(st.sampled_from([5, 15, 30, 45, 60, 90, 240, 480])),
        exclude=draw(st.one_of(st.none(), st.integers(0, 39))),
    )


@pytest.fixture
def orgs(make_org):
    """One organization per zone (each example writes its diary into a rolled-back
    transaction)."""
    return {zone: make_org(name=f"Diary {zone}", timezone=zone).id for zone in ZONES}


def _write(uow, org_id: int, diary: Diary) -> tuple[list[ResourceRow], int | None]:
    run = uow.session.execute
    zone = ZoneInfo(diary.zone)
    ids = [
        run(
            text(
                "INSERT INTO resources (org_id, name, name_key) VALUES (:org, :name, :key) "
                "RETURNING id"
            ),
            {"org": org_id, "name": f"R{i}", "key": f"r{i}"},
        ).scalar_one()
        for i in range(diary.resources)
    ]
    for resource, weekday, opens, closes in diary.weekly:
        run(
            text(
                "INSERT INTO working_hours (org_id, resource_id, weekday, opens, closes) "
                "VALUES (:org, :r, :w, :o, :c)"
            ),
            {"org": org_id, "r": ids[resource], "w": weekday, "o": opens, "c": closes},
        )
    today = diary.now.astimezone(zone).date()
    for resource, offset, hours in diary.exceptions:
        run(
            text(
                "INSERT INTO schedule_exceptions (org_id, resource_id, day, opens, closes) "
                "VALUES (:org, :r, :d, :o, :c)"
            ),
            {
                "org": org_id,
                "r": ids[resource],
                "d": today + timedelta(days=offset),
                "o": hours[0] if hours else None,
                "c": hours[1] if hours else None,
            },
        )
    contact = run(
        text(
            "INSERT INTO contacts (org_id, name, phone) VALUES (:org, 'D', '+14155550100') "
            "RETURNING id"
        ),
        {"org": org_id},
    ).scalar_one()
    booked: list[int] = []
    for n, (resource, offset, length, extra, status) in enumerate(diary.bookings):
        starts = diary.now + timedelta(minutes=offset)
        # The exclusion constraint refuses overlaps: a random diary keeps what it accepts.
        row = run(
            text(
                "INSERT INTO appointments (org_id, contact_id, resource_id, reference, "
                "starts_at, ends_at, blocked_until, status, name) VALUES (:org, :contact, :r, "
                ":ref, :s, :e, :b, :status, 'D') ON CONFLICT DO NOTHING RETURNING id"
            ),
            {
                "org": org_id,
                "contact": contact,
                "r": ids[resource],
                "ref": f"P{n}",
                "s": starts,
                "e": starts + timedelta(minutes=length),
                "b": starts + timedelta(minutes=length + extra),
                "status": status,
            },
        ).scalar_one_or_none()
        if row is not None:
            booked.append(row)
    links = []
    for resource, block, when_stale, age in diary.calendars:
        links.append(
            (
                run(
                    text(
                        "INSERT INTO calendar_links (org_id, resource_id, url, block, "
                        "when_stale, max_staleness_minutes, last_good_sync_at) VALUES "
                        "(:org, :r, 'https://dav.example.com/x/', :block, :stale, 60, :synced) "
                        "RETURNING id"
                    ),
                    {
                        "org": org_id,
                        "r": ids[resource],
                        "block": block,
                        "stale": when_stale,
                        "synced": None if age is None else diary.now - timedelta(minutes=age),
                    },
                ).scalar_one(),
                ids[resource],
            )
        )
    for link, offset, length in diary.busy:
        starts = diary.now + timedelta(minutes=offset)
        run(
            text(
                "INSERT INTO calendar_busy (org_id, link_id, resource_id, starts_at, ends_at) "
                "VALUES (:org, :link, :r, :s, :e)"
            ),
            {
                "org": org_id,
                "link": links[link][0],
                "r": links[link][1],
                "s": starts,
                "e": starts + timedelta(minutes=length),
            },
        )
    resources = [ResourceRow(ids[i], org_id, f"R{i}", f"r{i}") for i in sorted(diary.asked)]
    exclude = booked[diary.exclude % len(booked)] if booked and diary.exclude is not None else None
    return resources, exclude


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(diary=diaries())
def test_the_database_offers_what_the_python_engine_offers(runtime, orgs, diary):
    _compare(runtime, orgs, diary)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(diary=diaries(night_of_change=True))
def test_the_same_offers_around_a_clock_change(runtime, orgs, diary):
    """Starts in the skipped hour are never offered; in the repeated hour, the earlier
    occurrence; hours closing in either move as zoneinfo moves them."""
    _compare(runtime, orgs, diary)


def _compare(runtime, orgs, diary: Diary) -> None:
    org = OrgInfo(orgs[diary.zone], "Diary", diary.zone, "US", 30, rules=diary.rules)
    with runtime.uow() as uow:  # never committed: rolled back on leaving
        resources, exclude = _write(uow, org.id, diary)
        around = diary.now + timedelta(minutes=diary.around_minutes)
        duration = timedelta(minutes=diary.duration)
        args = (uow, org, resources, around, duration, diary.now)
        expected = alternatives_in_python(*args, exclude_appointment=exclude)
        got = alternatives(*args, exclude_appointment=exclude)

    # Coverage, shown by --hypothesis-show-statistics.
    event(f"offers={len(got)}")
    z = ZoneInfo(diary.zone)
    for slot in expected:
        local = slot.start.astimezone(z)
        if local.replace(fold=1).utcoffset() != local.replace(fold=0).utcoffset():
            event("ambiguous start offered")
        if local.date() in TRANSITIONS[diary.zone] and diary.zone != "UTC":
            event("start on a change day")
    assert got == expected


def _busy_diary() -> Diary:
    """Fifty bookings, every other 5-minute start from 01:00 on, London, before a clock change."""
    return Diary(
        zone="Europe/London",
        now=datetime(2027, 3, 27, 12, tzinfo=UTC),
        rules=Rules(slot_minutes=5, min_notice_minutes=0, horizon_days=30, buffer_minutes=0),
        resources=1,
        asked=[0],
        weekly=[(0, d, time(0), time(23, 55)) for d in range(7)],
        exceptions=[],
        bookings=[(0, 60 + 10 * i, 5, 0, "booked") for i in range(50)],
        calendars=[],
        busy=[],
        around_minutes=60 + 10 * 25,
        duration=5,
        exclude=None,
    )


def _offers(runtime, orgs, diary: Diary):
    """The alternatives to the diary's asked time, from the Python engine and from the
    database, with the statements the database's search sent, and the asked time."""
    org = OrgInfo(orgs[diary.zone], "Diary", diary.zone, "US", 30, rules=diary.rules)
    statements: list[str] = []

    def count(_conn, _cursor, sql, *_args) -> None:
        statements.append(sql)

    with runtime.uow() as uow:
        resources, _ = _write(uow, org.id, diary)
        around = diary.now + timedelta(minutes=diary.around_minutes)
        args = (uow, org, resources, around, timedelta(minutes=diary.duration), diary.now)
        expected = alternatives_in_python(*args)
        engine = uow.session.get_bind()
        sqlalchemy.event.listen(engine, "before_cursor_execute", count)
        try:
            got = alternatives(*args)
        finally:
            sqlalchemy.event.remove(engine, "before_cursor_execute", count)
    return got, expected, statements, around


def test_a_busy_diary_is_searched_without_loading_its_bookings(runtime, orgs):
    """Fifty bookings around the asked time: the database's search is one statement whose
    rows are the three starts offered (the Python engine loaded the fifty bookings)."""
    got, expected, statements, around = _offers(runtime, orgs, _busy_diary())

    assert got == expected
    assert [s.start for s in got] == [
        around - timedelta(minutes=5),
        around + timedelta(minutes=5),
        around - timedelta(minutes=15),
    ]
    # One search (the near window settles it), answering with the three rows it offers, and
    # no other statement: the search's plan is generic by the function's own setting.
    assert len(statements) == 1
    assert "free_starts(" in statements[0]


def test_the_search_runs_on_a_generic_plan_and_leaves_the_setting_alone(runtime, orgs):
    """The search is a function whose statement runs on its generic plan: PostgreSQL would
    otherwise plan it afresh at every execution (it kept choosing custom plans). The setting
    is the function's own, so the session's is untouched, directly and behind a pooler."""
    diary = _busy_diary()
    org = OrgInfo(orgs[diary.zone], "Diary", diary.zone, "US", 30, rules=diary.rules)
    with runtime.uow() as uow:
        resources, _ = _write(uow, org.id, diary)
        around = diary.now + timedelta(minutes=diary.around_minutes)
        args = (uow, org, resources, around, timedelta(minutes=5), diary.now)
        offers = [alternatives(*args) for _ in range(8)]
        mode = uow.session.execute(sqlalchemy.text("SHOW plan_cache_mode")).scalar()
        config = uow.session.execute(
            sqlalchemy.text("SELECT proconfig FROM pg_proc WHERE proname = 'free_starts'")
        ).scalar_one()

    assert all(o == offers[0] for o in offers) and len(offers[0]) == 3
    assert mode == "auto"
    assert config == ["plan_cache_mode=force_generic_plan"]


def _search(uow, orgs, diary: Diary):
    """The diary written, and the database's search over its resources."""
    from booking_service.persistence.repositories.free_starts import FreeStarts

    resources, _ = _write(uow, orgs[diary.zone], diary)
    return FreeStarts(
        uow.session,
        orgs[diary.zone],
        diary.zone,
        {r.id: r.name for r in resources},
        diary.rules,
        diary.now,
        timedelta(minutes=diary.duration),
    )


def _one_day(runtime, orgs, diary: Diary, day: date) -> list[datetime]:
    """The three starts of `day` nearest the asked time, by one search of that day alone."""
    with runtime.uow() as uow:
        around = diary.now + timedelta(minutes=diary.around_minutes)
        return [s.start for s in _search(uow, orgs, diary).nearest(day, day, around, 3)]


def _edge_diary(bookings: list, around: datetime, buffer: int) -> Diary:
    now = datetime(2027, 5, 10, 12, tzinfo=UTC)
    return Diary(
        zone="UTC",
        now=now,
        rules=Rules(slot_minutes=5, min_notice_minutes=0, horizon_days=30, buffer_minutes=buffer),
        resources=1,
        asked=[0],
        weekly=[(0, d, time(0), time(23, 55)) for d in range(7)],
        exceptions=[],
        bookings=[
            (0, int((starts - now).total_seconds() // 60), length, 0, "booked")
            for starts, length in bookings
        ],
        calendars=[],
        busy=[],
        around_minutes=int((around - now).total_seconds() // 60),
        duration=5,
        exclude=None,
    )


def test_a_one_day_search_sees_the_bookings_across_its_midnights(runtime, orgs):
    """A search reads only the bookings that can overlap its starts (#30): one that began the
    evening before still blocks the first starts of the day, and one early the next morning
    still blocks the last starts whose buffer reaches it."""
    day = date(2027, 5, 12)
    midnight = datetime(2027, 5, 12, tzinfo=UTC)
    m = timedelta(minutes=1)

    evening_before = _edge_diary([(midnight - 60 * m, 90)], midnight + 5 * m, buffer=0)
    assert _one_day(runtime, orgs, evening_before, day) == [
        midnight + 30 * m,
        midnight + 35 * m,
        midnight + 40 * m,
    ]

    # With a 4-hour buffer a start at 23:05 blocks until 03:10: the 03:05 booking is in the way.
    next_morning = _edge_diary(
        [(midnight + 1440 * m + 185 * m, 30)], midnight + 1430 * m, buffer=240
    )
    assert _one_day(runtime, orgs, next_morning, day) == [
        midnight + 1380 * m,
        midnight + 1375 * m,
        midnight + 1370 * m,
    ]


def test_the_earliest_starts_come_by_time_not_by_distance(runtime, orgs):
    """The same function answers "the earliest" (no asked time): the first free starts of the
    window in time order, skipping the taken ones, whatever time was asked elsewhere."""
    day = date(2027, 5, 12)
    midnight = datetime(2027, 5, 12, tzinfo=UTC)
    m = timedelta(minutes=1)
    # Taken: 00:00-00:20 and 00:30-00:35; asked: noon.
    diary = _edge_diary([(midnight, 20), (midnight + 30 * m, 5)], midnight + 720 * m, buffer=0)
    with runtime.uow() as uow:
        search = _search(uow, orgs, diary)
        earliest = [s.start for s in search.earliest(day, day, 3)]
        nearest = [s.start for s in search.nearest(day, day, midnight + 720 * m, 3)]

    assert earliest == [midnight + 20 * m, midnight + 25 * m, midnight + 35 * m]
    assert nearest == [midnight + 720 * m, midnight + 715 * m, midnight + 725 * m]


_MIDNIGHT = datetime(2027, 5, 12, tzinfo=UTC)


def _at(hour: int, minute: int) -> datetime:
    return _MIDNIGHT + timedelta(hours=hour, minutes=minute)


def _minutes(minutes: int) -> datetime:
    return _MIDNIGHT + timedelta(minutes=minutes)


def _offers_around(runtime, orgs, asked: datetime, taken: list, notice: int = 0):
    """`_offers` for `asked` in days open around the clock (5-minute grid) with `taken`
    ((start, minutes) pairs) booked and `notice` minutes of notice."""
    diary = _edge_diary(taken, asked, buffer=0)
    diary = replace(diary, rules=replace(diary.rules, min_notice_minutes=notice))
    got, expected, statements, _ = _offers(runtime, orgs, diary)
    assert all("free_starts(" in sql for sql in statements)
    return got, expected, statements


def _offers_around_noon(runtime, orgs, taken: list, notice: int = 0):
    """`_offers_around` noon, `taken` given as ((hour, minute), minutes) pairs."""
    booked = [(_at(*start), length) for start, length in taken]
    return _offers_around(runtime, orgs, _at(12, 0), booked, notice)


@pytest.mark.parametrize(
    ("taken", "offered", "searches"),
    [
        # Three free starts within two hours of noon: one search settles it.
        ([], [(12, 0), (11, 55), (12, 5)], 1),
        # Two there, the third three hours away: the whole day is searched.
        ([((9, 0), 175), ((12, 5), 175)], [(12, 0), (11, 55), (15, 0)], 2),
        # None there: the nearest beyond, equally far ones by time.
        ([((8, 0), 480)], [(16, 0), (7, 55), (16, 5)], 2),
    ],
)
def test_the_hours_around_the_asked_time_are_searched_first(
    runtime, orgs, taken, offered, searches
):
    """A refusal's first search looks within two hours of the asked time (free_starts
    NEAR_FIRST) and is the answer only when it finds all three starts there: any other start
    lies farther away. Otherwise the day is searched whole, and the answer is the Python
    engine's."""
    got, expected, statements = _offers_around_noon(runtime, orgs, taken)

    assert [s.start for s in got] == [_at(*hm) for hm in offered]
    assert got == expected
    assert len(statements) == searches


def test_a_time_asked_hours_before_the_first_bookable_start_costs_one_search(runtime, orgs):
    """Asked at noon with notice until 17:00: no start can lie within two hours of it, so the
    day is searched whole straight away (no search certain to find nothing)."""
    got, expected, statements = _offers_around_noon(runtime, orgs, [], notice=2 * 1440 + 300)

    assert [s.start for s in got] == [_at(17, 0), _at(17, 5), _at(17, 10)]
    assert got == expected
    assert len(statements) == 1


@pytest.mark.parametrize(
    ("asked", "taken", "offered", "searches"),
    [
        # Ten minutes into the day: the day alone cannot settle it (a start of the day before
        # may be as near), so it is not searched; the two-day window's near hours are.
        (10, [], [10, 5, 15], 1),
        # Five minutes before midnight (the day closes then, so its last start is 23:50):
        # the answer holds the next day's first start.
        (-5, [], [-10, 0, -15], 1),
        # Nothing free within two hours either side of midnight: the two-day window whole.
        (0, [(-120, 245)], [-125, 125, -130], 2),
    ],
)
def test_a_time_asked_near_midnight_searches_the_hours_around_it_across_the_days(
    runtime, orgs, asked, taken, offered, searches
):
    """A time asked within an hour of midnight is never settled by its own day, and the
    window after it spans five days: its near hours (which cross midnight) are searched
    first, as a one-day search's are (#30; about one refusal in ten in make bench's diary)."""
    booked = [(_minutes(start), length) for start, length in taken]
    got, expected, statements = _offers_around(runtime, orgs, _minutes(asked), booked)

    assert [s.start for s in got] == [_minutes(minute) for minute in offered]
    assert got == expected
    assert len(statements) == searches


def test_near_hours_found_short_are_not_searched_again_by_a_wider_window(runtime, orgs):
    """Asked at 02:30 with 00:30-04:35 taken: the day's near hours hold no start and the whole
    day's three (two hours off) do not settle it, so the two-day window runs. Its near hours
    are the day's, already searched: it searches its whole five days straight away."""
    got, expected, statements = _offers_around(runtime, orgs, _minutes(150), [(_minutes(30), 245)])

    assert [s.start for s in got] == [_minutes(minute) for minute in (25, 275, 20)]
    assert got == expected
    # The day's near hours, the whole day, the whole two-day window.
    assert len(statements) == 3
