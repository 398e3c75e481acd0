"""Daylight saving time around both transitions, in New York and London, over the webhook."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from booking_service.use_cases.orgs import update_rules
from booking_service.use_cases.resources import add_resource
from tests.support.helpers import envelope, error_of, only_result, post, tool_call, transitions

# zone, phone region, the hour that is skipped in spring and repeated in autumn
ZONES = [("America/New_York", "US", 2, 1), ("Europe/London", "GB", 1, 1)]


@pytest.fixture(params=ZONES, ids=[z[0] for z in ZONES])
def night_org(request, make_org, runtime):
    zone_name, region, gap_hour, repeated_hour = request.param
    org = make_org(name=f"Night {zone_name}", timezone=zone_name, phone_region=region)
    uow = runtime.uow
    add_resource(uow(), org.id, "Night desk", ["mon-sun 00:00-06:00"])
    update_rules(uow(), org.id, horizon_days=730, min_notice_minutes=0)
    org.gap_hour = gap_hour
    org.repeated_hour = repeated_hour
    org.spring, org.fall = transitions(ZoneInfo(zone_name))
    return org


def book(client, org, start: str, minutes: int = 30):
    body = envelope(
        tool_call(name="Night Owl", start=start, durationMinutes=minutes, resource="Night desk"),
        customer="+14155550123",
    )
    return post(client, org, body)


def test_a_time_in_the_spring_gap_is_refused_with_alternatives(client, night_org):
    start = f"{night_org.spring}T{night_org.gap_hour:02d}:30"
    message = error_of(book(client, night_org, start))

    assert "does not exist" in message
    assert "The nearest free times are" in message


def test_a_repeated_autumn_time_books_the_earlier_occurrence_and_says_so(client, night_org):
    start = f"{night_org.fall}T{night_org.repeated_hour:02d}:30"
    entry = only_result(book(client, night_org, start))
    result = json.loads(entry["result"])
    begins = datetime.fromisoformat(result["appointment"]["start"])
    summer_offset = datetime.combine(
        night_org.fall, datetime.min.time(), night_org.zone
    ).utcoffset()

    assert begins.utcoffset() == summer_offset  # the first (daylight) occurrence
    assert "happens twice" in result["message"]


@pytest.mark.parametrize("season", ["spring", "fall"])
def test_durations_across_the_change_are_real_minutes(client, night_org, season):
    day = getattr(night_org, season)
    start = f"{day}T00:00"
    result = json.loads(only_result(book(client, night_org, start, minutes=180))["result"])
    begins = datetime.fromisoformat(result["appointment"]["start"])
    ends = datetime.fromisoformat(result["appointment"]["end"])

    assert ends - begins == timedelta(minutes=180)
    # the wall clock shows an hour more (spring) or less (autumn) than three hours
    wall = ends.replace(tzinfo=None) - begins.replace(tzinfo=None)
    assert wall == timedelta(hours=4 if season == "spring" else 2)
