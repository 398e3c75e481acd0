"""Availability, booking rules and the appointment lifecycle over the webhook (real PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from booking_service.use_cases.orgs import update_rules
from booking_service.use_cases.resources import add_resource, add_service, set_day
from tests.support.helpers import (
    booked,
    booking,
    business_day,
    count,
    envelope,
    error_of,
    local_start,
    post,
    result_of,
    tool_call,
)


def call(client, org, tool, customer="+14155550123", call_id=None, **args):
    return post(client, org, envelope(tool_call(tool, call_id=call_id, **args), customer=customer))


def starts(result: dict) -> list[str]:
    return [s["start"][11:16] for s in result["slots"]]


# --- checkAvailability ------------------------------------------------------------------------


def test_availability_for_a_date_lists_ten_starts_on_the_grid(client, org):
    day = business_day(days=5)
    result = result_of(call(client, org, "checkAvailability", date=day.isoformat()))

    assert result["status"] == "available"
    assert starts(result) == [f"{9 + m // 60:02d}:{m % 60:02d}" for m in range(0, 150, 15)]
    assert all(s["start"].startswith(day.isoformat()) for s in result["slots"])
    assert all(s["resource"] == "Main" for s in result["slots"])
    assert day.strftime("%A") in result["message"]
    assert "\n" not in result["message"]


def test_availability_skips_booked_time(client, org):
    day = business_day(days=5)
    booked(post(client, org, envelope(tool_call(**booking(start=f"{day}T09:00")))))
    result = result_of(call(client, org, "checkAvailability", date=day.isoformat()))

    assert starts(result)[:2] == ["09:30", "09:45"]


def test_closed_day_offers_the_next_day_with_room(client, org, runtime):
    day = business_day(days=5)
    resource = runtime.uow
    main_id = _main_resource(runtime, org)
    set_day(resource(), main_id, day)
    result = result_of(call(client, org, "checkAvailability", date=day.isoformat()))

    assert result["status"] == "unavailable"
    assert result["slots"] == []
    assert result["nextAvailableDay"] == business_day(days=6).isoformat()
    assert "next day with room" in result["message"]


def test_availability_uses_the_service_length(client, org, runtime):
    add_service(runtime.uow(), org.id, "Deep Cleaning", 120)
    day = business_day(days=5)
    result = result_of(
        call(client, org, "checkAvailability", date=day.isoformat(), service="deep cleaning")
    )

    assert result["durationMinutes"] == 120
    assert result["service"] == "Deep Cleaning"
    # The afternoon, where the length decides: open until 17:00, so 15:00 is the last start
    # (the first ten slots of the morning could not tell a 120-minute search from a 15-minute).
    afternoon = result_of(
        call(
            client,
            org,
            "checkAvailability",
            service="deep cleaning",
            **{"from": f"{day}T14:00", "to": f"{day}T17:00"},
        )
    )
    assert starts(afternoon) == ["14:00", "14:15", "14:30", "14:45", "15:00"]


def test_unknown_service_lists_the_offered_ones(client, org, runtime):
    add_service(runtime.uow(), org.id, "Cleaning", 60)
    add_service(runtime.uow(), org.id, "Whitening", 90)
    message = error_of(post(client, org, envelope(tool_call(**booking(service="haircut")))))

    assert "Cleaning (60 minutes)" in message and "Whitening (90 minutes)" in message
    assert count_appointments(runtime) == 0


def test_from_to_window(client, org):
    day = business_day(days=5)
    result = result_of(
        call(client, org, "checkAvailability", **{"from": f"{day}T14:00", "to": f"{day}T15:00"})
    )

    # starts within [from, to); the appointment itself may run past `to`
    assert starts(result) == ["14:00", "14:15", "14:30", "14:45"]


@pytest.mark.parametrize(
    "args", [{"date": "someday"}, {"from": "2026-02-30"}, {"date": "2026-13-01"}]
)
def test_availability_with_unreadable_dates_states_today(client, org, args):
    message = error_of(call(client, org, "checkAvailability", **args))

    assert "Today is" in message


# --- booking rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "words"),
    [
        (lambda: f"{business_day(days=5)}T07:00", "outside our opening hours"),
        (lambda: f"{business_day(days=5)}T16:45", "outside our opening hours"),
        (lambda: f"{business_day(days=5)}T10:10", "every 15 minutes"),
        (lambda: "2020-01-06T10:00", "is in the past. Today is"),
        (lambda: f"{business_day(days=70)}T10:00", "up to 60 days in advance"),
    ],
)
def test_refused_starts_name_three_alternatives_with_local_iso_times(client, org, db, when, words):
    message = error_of(post(client, org, envelope(tool_call(**booking(start=when())))))

    assert words in message
    assert "The nearest free times are" in message
    assert message.count("-05:00)") + message.count("-04:00)") == 3
    assert count(db, "SELECT count(*) FROM appointments") == 0


def test_weekend_is_a_closed_day(client, org):
    day = business_day(days=5)
    saturday = day + timedelta(days=(5 - day.weekday()) % 7)
    message = error_of(post(client, org, envelope(tool_call(**booking(start=f"{saturday}T10:00")))))

    assert f"We are closed on {saturday:%A}" in message


def test_too_soon_respects_minimum_notice(client, org, runtime):
    update_rules(runtime.uow(), org.id, min_notice_minutes=60 * 24 * 30)
    message = error_of(post(client, org, envelope(tool_call(**booking(start=local_start(days=3))))))

    assert "too soon" in message and "720 hours notice" in message


def test_taken_slot_is_refused_with_alternatives(client, org, db):
    start = local_start(days=5)
    booked(post(client, org, envelope(tool_call(**booking(start=start, phone="+12025550101")))))
    message = error_of(
        post(client, org, envelope(tool_call(**booking(start=start, phone="+12025550102"))))
    )

    assert "taken" in message and "The nearest free times are" in message
    assert count(db, "SELECT count(*) FROM appointments") == 1


def test_buffer_keeps_time_free_after_each_booking(client, org, runtime):
    update_rules(runtime.uow(), org.id, buffer_minutes=15)
    day = business_day(days=5)
    booked(
        post(
            client, org, envelope(tool_call(**booking(start=f"{day}T10:00", phone="+12025550101")))
        )
    )
    message = error_of(
        post(
            client, org, envelope(tool_call(**booking(start=f"{day}T10:30", phone="+12025550102")))
        )
    )
    result = result_of(call(client, org, "checkAvailability", date=day.isoformat()))

    # 10:00-10:30 blocks until 10:45; a 30-minute booking before it must end (plus its own
    # buffer) by 10:00.
    assert "taken" in message
    assert starts(result)[:3] == ["09:00", "09:15", "10:45"]


def test_a_second_resource_takes_the_same_time(client, org, runtime, db):
    add_resource(runtime.uow(), org.id, "Dr. Patel", ["mon-fri 09:00-17:00"])
    start = local_start(days=5)
    first = booked(
        post(client, org, envelope(tool_call(**booking(start=start, phone="+12025550101"))))
    )
    second = booked(
        post(client, org, envelope(tool_call(**booking(start=start, phone="+12025550102"))))
    )
    third = error_of(
        post(client, org, envelope(tool_call(**booking(start=start, phone="+12025550103"))))
    )

    assert {first["appointment"]["resource"], second["appointment"]["resource"]} == {
        "Main",
        "Dr. Patel",
    }
    assert "taken" in third


def test_a_named_resource_is_booked_and_an_unknown_one_is_listed(client, org, runtime):
    add_resource(runtime.uow(), org.id, "Dr. Patel", ["mon-fri 09:00-17:00"])
    result = booked(post(client, org, envelope(tool_call(**booking(resource="dr. patel")))))
    message = error_of(post(client, org, envelope(tool_call(**booking(resource="Dr. Who")))))

    assert result["appointment"]["resource"] == "Dr. Patel"
    assert "Main" in message and "Dr. Patel" in message


def test_the_same_contact_booking_the_same_start_again_gets_the_existing_one(client, org, db):
    start = local_start(days=5)
    first = booked(post(client, org, envelope(tool_call(**booking(start=start)))))
    again = booked(post(client, org, envelope(tool_call(**booking(start=start)))))  # new id

    assert again["appointment"]["reference"] == first["appointment"]["reference"]
    assert again["alreadyBooked"] is True
    assert "already have" in again["message"]
    assert count(db, "SELECT count(*) FROM appointments") == 1


def test_service_duration_is_used_for_the_booking(client, org, runtime):
    add_service(runtime.uow(), org.id, "Cleaning", 60)
    result = booked(post(client, org, envelope(tool_call(**booking(service="CLEANING")))))
    start = datetime.fromisoformat(result["appointment"]["start"])
    end = datetime.fromisoformat(result["appointment"]["end"])

    assert end - start == timedelta(minutes=60)
    assert result["appointment"]["service"] == "Cleaning"


# --- the lifecycle -----------------------------------------------------------------------------


def test_book_find_reschedule_cancel_frees_the_slot(client, org, db):
    first_start = local_start(days=5, hour=10)
    new_start = local_start(days=6, hour=14)
    reference = booked(post(client, org, envelope(tool_call(**booking(start=first_start)))))[
        "appointment"
    ]["reference"]

    found = result_of(call(client, org, "findAppointments"))
    assert found["status"] == "found"
    assert [a["reference"] for a in found["appointments"]] == [reference]

    moved = result_of(
        call(client, org, "rescheduleAppointment", reference=reference.lower(), newStart=new_start)
    )
    assert moved["status"] == "rescheduled"
    assert moved["appointment"]["start"].startswith(new_start)
    assert moved["appointment"]["reference"] == reference

    cancelled = result_of(call(client, org, "cancelAppointment", start=new_start, reason="ill"))
    assert cancelled["status"] == "cancelled"
    again = result_of(call(client, org, "cancelAppointment", reference=reference))
    assert again["status"] == "already_cancelled"

    assert db.execute("SELECT status, cancel_reason FROM appointments").fetchall() == [
        ("cancelled", "ill")
    ]
    assert result_of(call(client, org, "findAppointments"))["status"] == "not_found"
    # the slot is free again for someone else
    booked(post(client, org, envelope(tool_call(**booking(start=new_start, phone="+12025550199")))))


def test_reschedule_into_a_taken_slot_keeps_the_original(client, org, db):
    mine = local_start(days=5, hour=10)
    theirs = local_start(days=5, hour=11)
    reference = booked(post(client, org, envelope(tool_call(**booking(start=mine)))))[
        "appointment"
    ]["reference"]
    booked(post(client, org, envelope(tool_call(**booking(start=theirs, phone="+12025550101")))))

    message = error_of(
        call(client, org, "rescheduleAppointment", reference=reference, newStart=theirs)
    )

    assert "taken" in message and "The nearest free time" in message
    row = db.execute(
        "SELECT starts_at, status FROM appointments WHERE reference = %s", (reference,)
    ).fetchone()
    assert row[1] == "booked"
    assert row[0].astimezone(org.zone).strftime("%Y-%m-%dT%H:%M") == mine


def test_reschedule_may_overlap_its_own_old_time(client, org):
    reference = booked(
        post(client, org, envelope(tool_call(**booking(start=local_start(days=5, hour=10)))))
    )["appointment"]["reference"]
    moved = result_of(
        call(
            client,
            org,
            "rescheduleAppointment",
            reference=reference,
            newStart=local_start(days=5, hour=10, minute=15),
        )
    )

    assert moved["status"] == "rescheduled"


def test_a_caller_cannot_cancel_or_move_another_contacts_appointment(client, org, db):
    reference = booked(post(client, org, envelope(tool_call(**booking(phone="+12025550101")))))[
        "appointment"
    ]["reference"]

    cancel = error_of(call(client, org, "cancelAppointment", reference=reference))
    move = error_of(
        call(
            client, org, "rescheduleAppointment", reference=reference, newStart=local_start(days=6)
        )
    )
    found = result_of(call(client, org, "findAppointments"))

    assert "could not find that appointment" in cancel and "could not find that appointment" in move
    assert found["appointments"] == []
    assert db.execute("SELECT status FROM appointments").fetchall() == [("booked",)]


def test_another_organization_cannot_see_or_touch_appointments(client, make_org, db):
    a = make_org(name="A")
    b = make_org(name="B")
    reference = booked(post(client, a, envelope(tool_call(**booking()))))["appointment"][
        "reference"
    ]

    assert result_of(call(client, b, "findAppointments"))["appointments"] == []
    assert "could not find" in error_of(call(client, b, "cancelAppointment", reference=reference))
    assert db.execute("SELECT status FROM appointments").fetchall() == [("booked",)]


def test_cancel_and_reschedule_need_a_reference_or_a_start(client, org):
    message = error_of(call(client, org, "cancelAppointment"))

    assert "booking reference or the current start time is needed" in message


def test_a_repeated_cancel_tool_call_returns_the_stored_answer(client, org):
    reference = booked(post(client, org, envelope(tool_call(**booking()))))["appointment"][
        "reference"
    ]
    first = call(client, org, "cancelAppointment", call_id="call_c1", reference=reference)
    second = call(client, org, "cancelAppointment", call_id="call_c1", reference=reference)

    assert first.get_json() == second.get_json()
    assert result_of(second)["status"] == "cancelled"


def _main_resource(runtime, org) -> int:
    from booking_service.use_cases.resources import list_resources

    return next(r.id for r in list_resources(runtime.uow(), org.id) if r.name == "Main")


def count_appointments(runtime) -> int:
    from sqlalchemy import text

    with runtime.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM appointments")).scalar()


def test_a_phone_caller_cannot_reach_another_contact_through_arguments(client, org, db):
    """On a phone call only the calling number identifies the caller: naming the victim's
    email or number in the arguments neither lists nor cancels the victim's appointment."""
    victim = booked(
        post(
            client,
            org,
            envelope(tool_call(**booking(email="victim@example.com")), customer="+14155550123"),
        )
    )["appointment"]["reference"]
    attacker = "+14155550999"

    by_email = result_of(
        call(client, org, "findAppointments", customer=attacker, email="victim@example.com")
    )
    by_phone = result_of(
        call(client, org, "findAppointments", customer=attacker, phone="+14155550123")
    )
    cancel = error_of(
        call(
            client,
            org,
            "cancelAppointment",
            customer=attacker,
            reference=victim,
            phone="+14155550123",
            email="victim@example.com",
        )
    )

    assert by_email["appointments"] == [] and by_phone["appointments"] == []
    assert "could not find that appointment" in cancel
    assert db.execute("SELECT status FROM appointments").fetchall() == [("booked",)]


def test_a_web_caller_reaches_a_booking_only_by_reference_with_its_email(client, org):
    """Without a verified caller an email alone lists nothing; the reference with the email the
    booking was made with finds exactly that booking."""
    reference = booked(
        post(
            client,
            org,
            envelope(tool_call(**booking(email="web@example.com")), customer=None),
        )
    )["appointment"]["reference"]

    by_email = error_of(
        call(client, org, "findAppointments", customer=None, email="web@example.com")
    )
    found = result_of(
        call(
            client,
            org,
            "findAppointments",
            customer=None,
            reference=reference.lower(),
            email="WEB@example.com",
        )
    )

    assert "reference" in by_email and "web@example.com" not in by_email
    assert [a["reference"] for a in found["appointments"]] == [reference]
    assert found["appointments"][0]["name"] == "Maria Lopez"


def test_a_move_to_another_resource_is_said(client, org, runtime):
    add_resource(runtime.uow(), org.id, "Dr. Patel", ["mon-fri 09:00-17:00"])
    mine = booked(
        post(client, org, envelope(tool_call(**booking(start=local_start(days=5, hour=10)))))
    )
    booked(
        post(
            client,
            org,
            envelope(
                tool_call(**booking(start=local_start(days=5, hour=14), phone="+12025550101"))
            ),
        )
    )
    moved = result_of(
        call(
            client,
            org,
            "rescheduleAppointment",
            reference=mine["appointment"]["reference"],
            newStart=local_start(days=5, hour=14),
        )
    )

    assert moved["appointment"]["resource"] == "Dr. Patel"
    assert "now with Dr. Patel instead of Main" in moved["message"]
