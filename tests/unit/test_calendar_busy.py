"""Busy times read from an owner's calendar (calendar_events.busy_ranges) and the VEVENT we push."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import icalendar
import pytest

from booking_service.domain import calendar_events
from booking_service.domain.caller_messages import calendar_uid

NY = ZoneInfo("America/New_York")
WINDOW = (datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 6, 1, tzinfo=UTC))


def cal(*events: str) -> icalendar.Calendar:
    body = "\r\n".join(
        ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", *events, "END:VCALENDAR"]
    )
    return icalendar.Calendar.from_ical(body)


def event(uid: str, *lines: str) -> str:
    return "\r\n".join(
        ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20261130T120000Z", *lines, "END:VEVENT"]
    )


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def busy(*events: str, zone: ZoneInfo = NY, window=WINDOW):
    return calendar_events.busy_ranges(
        [cal(*events)], zone, *window, own_suffix=calendar_events.own_uid_suffix(7)
    )


def test_a_weekly_event_keeps_its_local_time_across_the_spring_dst_change():
    weekly = event(
        "course",
        "DTSTART;TZID=America/New_York:20270302T100000",
        "DTEND;TZID=America/New_York:20270302T110000",
        "RRULE:FREQ=WEEKLY;COUNT=3",
    )
    # 10:00 local is 15:00 UTC in EST and 14:00 UTC once the clocks went forward on 14 March.
    assert busy(weekly) == [
        (utc(2027, 3, 2, 15), utc(2027, 3, 2, 16)),
        (utc(2027, 3, 9, 15), utc(2027, 3, 9, 16)),
        (utc(2027, 3, 16, 14), utc(2027, 3, 16, 15)),
    ]


def test_an_exception_to_a_recurrence_moves_or_removes_that_occurrence():
    master = event(
        "lunch",
        "DTSTART;TZID=America/New_York:20270104T120000",
        "DTEND;TZID=America/New_York:20270104T130000",
        "RRULE:FREQ=DAILY;COUNT=3",
        "EXDATE;TZID=America/New_York:20270105T120000",
    )
    moved = event(
        "lunch",
        "RECURRENCE-ID;TZID=America/New_York:20270106T120000",
        "DTSTART;TZID=America/New_York:20270106T140000",
        "DTEND;TZID=America/New_York:20270106T150000",
    )
    assert busy(master, moved) == [
        (utc(2027, 1, 4, 17), utc(2027, 1, 4, 18)),
        (utc(2027, 1, 6, 19), utc(2027, 1, 6, 20)),
    ]


def test_an_all_day_event_is_the_whole_local_day_of_the_organization():
    holiday = event("holiday", "DTSTART;VALUE=DATE:20270115", "DTEND;VALUE=DATE:20270116")
    assert busy(holiday) == [(utc(2027, 1, 15, 5), utc(2027, 1, 16, 5))]
    berlin = ZoneInfo("Europe/Berlin")
    assert busy(holiday, zone=berlin) == [(utc(2027, 1, 14, 23), utc(2027, 1, 15, 23))]


def test_an_all_day_event_without_an_end_is_one_day():
    assert busy(event("x", "DTSTART;VALUE=DATE:20270115")) == [
        (utc(2027, 1, 15, 5), utc(2027, 1, 16, 5))
    ]


def test_an_event_in_another_zone_blocks_its_real_instant():
    london = event(
        "call",
        "DTSTART;TZID=Europe/London:20270120T150000",
        "DTEND;TZID=Europe/London:20270120T160000",
    )
    assert busy(london) == [(utc(2027, 1, 20, 15), utc(2027, 1, 20, 16))]


def test_floating_times_are_the_organizations_local_time_and_duration_counts():
    floating = event("f", "DTSTART:20270120T090000", "DURATION:PT90M")
    assert busy(floating) == [(utc(2027, 1, 20, 14), utc(2027, 1, 20, 15, 30))]


def test_free_cancelled_zero_length_and_our_own_events_are_not_busy():
    free = event("free", "DTSTART:20270120T150000Z", "DTEND:20270120T160000Z", "TRANSP:TRANSPARENT")
    cancelled = event(
        "gone", "DTSTART:20270121T150000Z", "DTEND:20270121T160000Z", "STATUS:CANCELLED"
    )
    instant = event("reminder", "DTSTART:20270122T150000Z")
    ours = event(calendar_uid(7, "ACD347"), "DTSTART:20270123T150000Z", "DTEND:20270123T160000Z")
    opaque = event("busy", "DTSTART:20270124T150000Z", "DTEND:20270124T160000Z", "TRANSP:OPAQUE")
    assert busy(free, cancelled, instant, ours, opaque) == [
        (utc(2027, 1, 24, 15), utc(2027, 1, 24, 16))
    ]


def test_overlapping_events_merge_and_the_window_clips():
    a = event("a", "DTSTART:20270120T150000Z", "DTEND:20270120T170000Z")
    b = event("b", "DTSTART:20270120T160000Z", "DTEND:20270120T180000Z")
    c = event("c", "DTSTART:20270120T180000Z", "DTEND:20270120T183000Z")  # touching
    edge = event("d", "DTSTART:20261231T230000Z", "DTEND:20270101T010000Z")
    assert busy(a, b, c, edge) == [
        (utc(2027, 1, 1), utc(2027, 1, 1, 1)),
        (utc(2027, 1, 20, 15), utc(2027, 1, 20, 18, 30)),
    ]


def test_the_pushed_event_has_our_uid_local_times_with_tzid_and_a_masked_phone():
    entry = calendar_events.CalendarEntry(
        org_id=7,
        reference="ACD347",
        sequence=2,
        starts_at=utc(2027, 1, 20, 15),
        ends_at=utc(2027, 1, 20, 15, 30),
        name="Maria Lopez",
        service="Cleaning",
        resource="Dr Chen",
        phone="+14155550123",
    )
    text = calendar_events.event_document(entry, NY, utc(2026, 11, 30)).decode()
    parsed = icalendar.Calendar.from_ical(text)
    (vevent,) = parsed.walk("VEVENT")
    assert str(vevent["UID"]) == calendar_uid(7, "ACD347")
    assert vevent["SEQUENCE"] == 2
    assert "DTSTART;TZID=America/New_York:20270120T100000" in text
    assert parsed.walk("VTIMEZONE"), "a TZID needs its VTIMEZONE"
    assert str(vevent["SUMMARY"]) == "Maria Lopez: Cleaning"
    assert "Reference ACD347" in str(vevent["DESCRIPTION"])
    assert "***0123" in str(vevent["DESCRIPTION"])
    assert "4155550123" not in text and "555" not in text
    # Our own event read back is not busy time.
    assert (
        calendar_events.busy_ranges(
            [parsed], NY, *WINDOW, own_suffix=calendar_events.own_uid_suffix(7)
        )
        == []
    )
    # Another organization's event (an invitation the owner accepted elsewhere) is busy time.
    assert calendar_events.busy_ranges(
        [parsed], NY, *WINDOW, own_suffix=calendar_events.own_uid_suffix(8)
    )


def test_an_endless_frequent_recurrence_fails_the_poll_instead_of_filling_memory():
    endless = event(
        "spam", "DTSTART:20270101T000000Z", "DURATION:PT30S", "RRULE:FREQ=SECONDLY;INTERVAL=60"
    )
    with pytest.raises(calendar_events.UnreadableCalendar, match=r"repeats too\s+often: spam"):
        busy(endless)
    # An endless daily one is fine: the window ends it.
    daily = event("standup", "DTSTART:20270101T140000Z", "DURATION:PT15M", "RRULE:FREQ=DAILY")
    assert len(busy(daily)) == (WINDOW[1] - WINDOW[0]).days


def test_an_unreadable_event_fails_the_poll_naming_it_never_guessed_free():
    broken = event("broken-rule", "DTSTART:20270101T140000Z", "DURATION:PT15M", "RRULE:FREQ=FOO")
    with pytest.raises(calendar_events.UnreadableCalendar, match="broken-rule could not be read"):
        busy(broken)


def test_masked_phone_keeps_only_the_last_four_digits():
    assert calendar_events.masked_phone("+1 (415) 555-0123") == "***0123"
    assert calendar_events.masked_phone(None) == ""


# --- the bounded iterator (recurrence.py): what a hostile calendar cannot do (#24) -------------


@pytest.mark.parametrize("freq", ["SECONDLY", "MINUTELY"])
def test_rules_repeating_every_second_or_minute_are_refused_even_with_a_count(freq):
    bomb = event("bomb", "DTSTART:20270101T000000Z", "DURATION:PT1S", f"RRULE:FREQ={freq};COUNT=3")
    with pytest.raises(calendar_events.UnreadableCalendar, match=f"bomb.*FREQ={freq}"):
        busy(bomb)


def test_free_occurrences_count_toward_the_cap_though_they_block_nothing():
    free = event(
        "free-hourly",
        "DTSTART:20270101T000000Z",
        "DURATION:PT5M",
        "TRANSP:TRANSPARENT",
        "RRULE:FREQ=HOURLY",
    )
    with pytest.raises(calendar_events.UnreadableCalendar, match="free-hourly"):
        calendar_events.busy_ranges(
            [cal(free)], NY, *WINDOW, own_suffix=calendar_events.own_uid_suffix(7), limit=1000
        )
    # Under the cap they are read, and are not busy.
    assert (
        calendar_events.busy_ranges(
            [cal(free)], NY, *WINDOW, own_suffix=calendar_events.own_uid_suffix(7), limit=10_000
        )
        == []
    )


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=YEARLY;BYYEARDAY=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20",
        "FREQ=YEARLY;BYWEEKNO=1,2,3,4,5,6,7,8,9,10;BYDAY=MO,TU,WE,TH,FR,SA,SU",
        "FREQ=DAILY;BYHOUR=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23",
        "FREQ=HOURLY;BYSETPOS=1,-1;BYMINUTE=0,30",
    ],
)
def test_by_lists_the_old_guard_ignored_are_capped_by_what_they_expand_to(rule):
    dense = event("dense", "DTSTART:20270101T000000Z", "DURATION:PT1M", f"RRULE:{rule}")
    with pytest.raises(calendar_events.UnreadableCalendar, match="dense"):
        calendar_events.busy_ranges(
            [cal(dense)], NY, *WINDOW, own_suffix=calendar_events.own_uid_suffix(7), limit=10
        )


def test_the_cap_is_shared_by_all_the_calendars_of_one_read():
    weekly = [
        cal(event(f"w{i}", "DTSTART:20270104T150000Z", "DURATION:PT1H", "RRULE:FREQ=WEEKLY"))
        for i in range(10)
    ]
    with pytest.raises(calendar_events.UnreadableCalendar):
        calendar_events.busy_ranges(weekly, NY, *WINDOW, own_suffix="-7@x", limit=100)
    assert calendar_events.busy_ranges(weekly, NY, *WINDOW, own_suffix="-7@x", limit=300)


def test_a_rule_that_began_long_ago_costs_steps_and_is_refused_past_the_step_cap():
    ancient = event("ancient", "DTSTART:19000101T000000Z", "DURATION:PT5M", "RRULE:FREQ=HOURLY")
    with pytest.raises(calendar_events.UnreadableCalendar, match="too long ago: ancient"):
        busy(ancient)
    # A daily event since 1990 is an ordinary diary: read.
    old_daily = event("standup", "DTSTART:19900101T140000Z", "DURATION:PT15M", "RRULE:FREQ=DAILY")
    assert len(busy(old_daily)) == (WINDOW[1] - WINDOW[0]).days


def test_rdate_adds_and_exdate_removes_occurrences_including_all_day_ones():
    days = event(
        "off",
        "DTSTART;VALUE=DATE:20270104",
        "RRULE:FREQ=WEEKLY;COUNT=3",
        "EXDATE;VALUE=DATE:20270111",
        "RDATE;VALUE=DATE:20270105",
    )
    midnight = [datetime(2027, 1, d, tzinfo=NY).astimezone(UTC) for d in (4, 5, 6, 18, 19)]
    assert busy(days) == [(midnight[0], midnight[2]), (midnight[3], midnight[4])]
