"""The VAPI webhook through the Flask test client against a real, migrated PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from tests.support.helpers import (
    booked,
    booking,
    count,
    envelope,
    error_of,
    local_start,
    only_result,
    post,
    tool_call,
)

# --- the shared, realistic VAPI payloads -------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "tool-calls-book.json",
        "tool-calls-book-string-arguments.json",
        "tool-calls-legacy-toolCalls-only.json",
    ],
)
def test_realistic_payload_books_for_the_callers_number(client, org, db, fixture_body, name):
    result = booked(post(client, org, fixture_body(name)))

    appointment = result["appointment"]
    assert appointment["timezone"] == "America/New_York"
    assert len(appointment["reference"]) == 6
    start = datetime.fromisoformat(appointment["start"])
    end = datetime.fromisoformat(appointment["end"])
    assert start.utcoffset() is not None
    assert (end - start).total_seconds() == 30 * 60
    assert start.strftime("%A") in result["message"]
    row = db.execute(
        "SELECT c.phone, c.email, c.name, a.name, a.email, a.service, a.notes, a.reference, "
        "a.vapi_call_id FROM appointments a JOIN contacts c ON c.id = a.contact_id"
    ).fetchall()
    # The organization has no catalogue, so the caller's "cleaning" is a note for staff.
    assert row == [
        (
            "+14155550123",
            "maria.lopez@example.com",
            "Maria Lopez",
            "Maria Lopez",
            "maria.lopez@example.com",
            None,
            "Service asked for: cleaning",
            appointment["reference"],
            "019aa9bb-3c4d-7e8f-9a0b-1c2d3e4f5a6b",
        )
    ]


def test_two_calls_in_one_message_are_answered_in_order(client, org, db, fixture_body):
    body = fixture_body("tool-calls-two-calls.json")
    response = post(client, org, body)

    assert response.status_code == 200
    results = response.get_json()["results"]
    ids = [c["id"] for c in body["message"]["toolCallList"]]
    assert [r["toolCallId"] for r in results] == ids
    assert all(json.loads(r["result"])["status"] == "booked" for r in results)
    assert count(db, "SELECT count(*) FROM appointments") == 2
    assert count(db, "SELECT count(*) FROM contacts") == 1


def test_web_call_with_email_only_books_by_email(client, org, db, fixture_body):
    booked(post(client, org, fixture_body("tool-calls-web-call-email-only.json")))

    assert db.execute("SELECT phone, email FROM contacts").fetchall() == [
        (None, "sam.okafor@example.com")
    ]


@pytest.mark.parametrize("name", ["status-update.json", "end-of-call-report.json"])
def test_informational_messages_get_an_empty_object(client, org, db, fixture_body, name):
    response = post(client, org, fixture_body(name))

    assert response.status_code == 200
    assert response.get_json() == {}
    assert count(db, "SELECT count(*) FROM contacts") == 0


# --- contact resolution through the webhook ----------------------------------------------


def test_same_phone_twice_with_different_emails_keeps_one_contact(client, org, db):
    post(client, org, envelope(tool_call(**booking(email="old@example.com"))))
    booked(
        post(
            client,
            org,
            envelope(tool_call(**booking(email="new@example.com", start=local_start(days=8)))),
        )
    )

    assert db.execute("SELECT phone, email FROM contacts").fetchall() == [
        ("+14155550123", "new@example.com")
    ]
    assert count(db, "SELECT count(*) FROM appointments") == 2


def test_absent_values_never_erase_stored_ones(client, org, db):
    booked(post(client, org, envelope(tool_call(**booking(email="maria@example.com")))))
    booked(
        post(
            client, org, envelope(tool_call(**booking(name="Maria L.", start=local_start(days=9))))
        )
    )

    assert db.execute("SELECT name, email FROM contacts").fetchall() == [
        ("Maria L.", "maria@example.com")
    ]


def test_same_email_only_booking_twice_keeps_one_contact(client, org, db):
    for days in (7, 8):
        body = envelope(
            tool_call(**booking(email=" Sam@Example.com ", start=local_start(days=days))),
            customer=None,
        )
        booked(post(client, org, body))

    assert db.execute("SELECT phone, email FROM contacts").fetchall() == [(None, "sam@example.com")]
    assert count(db, "SELECT count(*) FROM appointments") == 2


def test_an_email_only_contact_never_gains_the_phone_of_whoever_names_its_email(client, org, db):
    """Naming an email is a claim: the phone caller gets a contact of their own, and the
    email-only contact (and its bookings) stays out of their reach. This replaces the old rule
    "a phone-less contact gains the phone", which let any caller take an email over."""
    booked(
        post(client, org, envelope(tool_call(**booking(email="sam@example.com")), customer=None))
    )
    booked(
        post(
            client,
            org,
            envelope(tool_call(**booking(email="SAM@example.com", start=local_start(days=8)))),
        )
    )

    assert db.execute("SELECT phone, email FROM contacts ORDER BY id").fetchall() == [
        (None, "sam@example.com"),
        ("+14155550123", "sam@example.com"),
    ]
    assert count(db, "SELECT count(DISTINCT contact_id) FROM appointments") == 2


@pytest.mark.parametrize("phone", ["(415) 555-0123", "415.555.0123", "+14155550123", 4155550123])
def test_local_and_international_forms_of_a_number_are_one_contact(client, org, db, phone):
    booked(
        post(client, org, envelope(tool_call(**booking(phone="+1 415 555 0123")), customer=None))
    )
    booked(
        post(
            client,
            org,
            envelope(tool_call(**booking(phone=phone, start=local_start(days=8))), customer=None),
        )
    )

    assert db.execute("SELECT phone FROM contacts").fetchall() == [("+14155550123",)]


def test_template_text_copied_by_the_model_falls_back_to_the_callers_number(client, org, db):
    booked(post(client, org, envelope(tool_call(**booking(phone="{{customer.number}}")))))

    assert db.execute("SELECT phone FROM contacts").fetchall() == [("+14155550123",)]


def test_caller_number_from_call_customer_is_used(client, org, db):
    body = envelope(tool_call(**booking()), customer=None)
    body["message"]["call"]["customer"] = {"number": "+12025550199"}
    booked(post(client, org, body))

    assert db.execute("SELECT phone FROM contacts").fetchall() == [("+12025550199",)]


def test_no_phone_no_email_no_caller_number_writes_nothing(client, org, db):
    message = error_of(post(client, org, envelope(tool_call(**booking()), customer=None)))

    assert "phone number or email" in message
    for table in ("contacts", "appointments", "tool_calls"):
        assert count(db, f"SELECT count(*) FROM {table}") == 0


@pytest.mark.parametrize("customer", [None, "+14155550123"])
def test_an_unreadable_phone_is_asked_again_and_books_nothing(client, org, db, customer):
    """Never silently replaced by the caller's own number (that books the wrong person)."""
    message = error_of(
        post(client, org, envelope(tool_call(**booking(phone="call me maybe")), customer=customer))
    )

    assert "call me maybe" in message
    assert "repeat" in message
    for table in ("contacts", "appointments", "tool_calls"):
        assert count(db, f"SELECT count(*) FROM {table}") == 0


def test_an_unreadable_email_is_asked_again_and_books_nothing(client, org, db):
    message = error_of(post(client, org, envelope(tool_call(**booking(email="sam at example")))))

    assert "sam at example" in message and "spell it again" in message
    assert count(db, "SELECT count(*) FROM appointments") == 0


# --- bookAppointment arguments -------------------------------------------------------------


def test_naive_start_is_local_time_of_the_organization(client, make_org, db):
    paris = make_org(name="Salon Lumière", timezone="Europe/Paris", phone_region="FR")
    start = local_start("Europe/Paris", days=10, hour=15)
    result = booked(post(client, paris, envelope(tool_call(**booking(start=start)))))

    assert result["appointment"]["start"].startswith(start)
    assert result["appointment"]["timezone"] == "Europe/Paris"
    assert "3:00 PM" in result["message"]


def test_start_with_offset_is_converted_to_local_time(client, org):
    local = local_start(days=10, hour=10)
    as_utc = datetime.fromisoformat(local).replace(tzinfo=org.zone).astimezone()
    result = booked(post(client, org, envelope(tool_call(**booking(start=as_utc.isoformat())))))

    assert result["appointment"]["start"].startswith(local)


def test_duration_and_service_and_notes_are_kept(client, org, db):
    result = booked(
        post(
            client,
            org,
            envelope(
                tool_call(**booking(durationMinutes="45", service="whitening", notes="first visit"))
            ),
        )
    )

    row = db.execute(
        "SELECT extract(epoch FROM ends_at - starts_at)::int, service, notes FROM appointments"
    ).fetchone()
    # Without a catalogue the service the caller named is kept as a note, for staff only.
    assert row == (45 * 60, None, "Service asked for: whitening\nfirst visit")
    assert "whitening" not in json.dumps(result) and "first visit" not in json.dumps(result)


@pytest.mark.parametrize("minutes", [45.5, 30.25, "45.5"])
def test_a_duration_that_is_not_whole_minutes_is_refused(client, org, db, minutes):
    message = error_of(post(client, org, envelope(tool_call(**booking(durationMinutes=minutes)))))

    assert "the duration" in message
    assert count(db, "SELECT count(*) FROM appointments") == 0


@pytest.mark.parametrize("start", ["2020-01-06T10:00", "next tuesday", "2026-13-45T10:00", ""])
def test_past_or_unparseable_start_states_todays_date(client, org, db, start):
    message = error_of(post(client, org, envelope(tool_call(**booking(start=start)))))

    today = datetime.now(org.zone)
    if start:
        assert f"Today is {today:%A}, {today:%B} {today.day}, {today.year}" in message
    assert count(db, "SELECT count(*) FROM appointments") == 0


def test_unknown_extra_arguments_are_ignored(client, org):
    booked(post(client, org, envelope(tool_call(**booking(favouriteColour="teal")))))


def test_unknown_tool_gets_an_error_naming_the_tools(client, org):
    message = error_of(post(client, org, envelope(tool_call("orderPizza", size="large"))))

    assert "bookAppointment" in message


@pytest.mark.parametrize(
    "arguments",
    [
        {"name": "Maria", "start": local_start(), "notes": "a\x00b"},
        {"name": "M" * 100_000, "start": local_start()},
        {"name": "Maria", "start": local_start(), "notes": "x" * 50_000},
        {"name": "Maria", "start": "2026-12-01T10:00\x00"},
        {"name": ["Maria"], "start": local_start()},
        {"name": "Maria", "start": local_start(), "durationMinutes": "forever"},
        {"name": "Maria", "start": local_start(), "durationMinutes": 100_000},
        {"start": local_start()},
    ],
)
def test_bad_arguments_get_a_clean_spoken_error(client, org, db, arguments):
    message = error_of(post(client, org, envelope(tool_call(**arguments))))

    assert message.startswith("I could not make the booking")
    assert len(message) < 300
    assert count(db, "SELECT count(*) FROM appointments") == 0


def test_lone_surrogate_in_arguments_is_a_clean_error(client, org, db):
    raw = json.dumps(envelope(tool_call(**booking()))).replace("Maria Lopez", "Maria \\ud800")
    message = error_of(post(client, org, raw))

    assert "invalid character" in message
    assert count(db, "SELECT count(*) FROM appointments") == 0


def test_arguments_that_are_not_json_get_an_error(client, org):
    call = tool_call()
    call["function"]["arguments"] = "{name: Maria"
    message = error_of(post(client, org, envelope(call)))

    assert "could not read the details" in message


def test_results_are_single_line_strings(client, org, fixture_body):
    entry = only_result(post(client, org, fixture_body("tool-calls-book.json")))

    assert isinstance(entry["result"], str)
    assert "\n" not in entry["result"]


# --- envelope ---------------------------------------------------------------------------------


def test_top_level_name_and_parameters_are_accepted(client, org):
    call = {"id": "call_flat", "name": "bookAppointment", "parameters": booking()}
    booked(post(client, org, envelope(call)))


def test_malformed_json_is_400(client, org):
    response = post(client, org, b'{"message": ')

    assert response.status_code == 400
    assert response.get_json()["error"]["status"] == 400


def test_invalid_utf8_is_400(client, org):
    response = post(client, org, b'{"message": {"type": "\xff\xfe"}}')

    assert response.status_code == 400


@pytest.mark.parametrize("body", [{}, {"message": "hello"}, [1, 2], {"msg": {}}])
def test_body_without_message_object_is_400(client, org, body):
    assert post(client, org, body).status_code == 400


def test_body_over_the_limit_is_413(client, org, db):
    body = envelope(tool_call(**booking(notes="x" * (1024 * 1024))))
    response = post(client, org, body)

    assert response.status_code == 413
    assert response.get_json()["error"]["status"] == 413
    assert count(db, "SELECT count(*) FROM appointments") == 0


def test_body_limit_is_configurable(database_url, org):
    from tests.support.app import make_app

    small = make_app(database_url, MAX_BODY_BYTES=2048)
    try:
        client = small.test_client()
        response = post(client, org, envelope(tool_call(**booking(notes="x" * 4096))))
        assert response.status_code == 413
        booked(post(client, org, envelope(tool_call(**booking()))))
    finally:
        small.extensions["booking_service"].engine.dispose()


def test_deeply_nested_json_is_rejected_cleanly(client, org):
    response = post(client, org, b'{"message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")

    assert response.status_code == 400


def test_tool_call_without_id_gets_an_error_and_books_nothing(client, org, db):
    call = tool_call(**booking())
    del call["id"]
    entry = only_result(post(client, org, envelope(call)))

    assert "error" in entry
    assert count(db, "SELECT count(*) FROM appointments") == 0


# --- idempotency -------------------------------------------------------------------------------


def test_same_tool_call_id_twice_books_once_with_identical_answers(client, org, db):
    body = envelope(tool_call(call_id="call_repeat", **booking()))
    first = post(client, org, body)
    second = post(client, org, body)

    assert booked(first) == booked(second)
    assert first.get_json() == second.get_json()
    assert count(db, "SELECT count(*) FROM appointments") == 1
    assert count(db, "SELECT count(*) FROM tool_calls") == 1


def test_same_tool_call_id_with_other_arguments_is_refused(client, org, db):
    booked(post(client, org, envelope(tool_call(call_id="call_x", **booking()))))
    message = error_of(
        post(client, org, envelope(tool_call(call_id="call_x", **booking(name="Someone Else"))))
    )

    assert "already used" in message
    assert count(db, "SELECT count(*) FROM appointments") == 1


def test_a_failed_call_can_be_retried_with_the_same_id(client, org, db):
    failed = post(client, org, envelope(tool_call(call_id="call_y", **booking()), customer=None))
    error_of(failed)
    booked(post(client, org, envelope(tool_call(call_id="call_y", **booking()))))

    assert count(db, "SELECT count(*) FROM appointments") == 1
