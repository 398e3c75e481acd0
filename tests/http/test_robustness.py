"""Inputs and failures at the edges: ids, bodies, time budgets, logs."""

from __future__ import annotations

import io
import json
import logging
import threading
import time

import psycopg

from booking_service.config import Settings
from booking_service.persistence.db import make_engine
from booking_service.runtime.logging_setup import MaskingFormatter
from booking_service.use_cases.tool_calls import fingerprint
from tests.support.app import make_app
from tests.support.helpers import (
    booked,
    booking,
    count,
    envelope,
    error_of,
    only_result,
    post,
    tool_call,
)


def test_tool_call_ids_are_echoed_exactly_as_sent(client, org):
    call = tool_call(call_id="  call with spaces  ", **booking())
    entry = only_result(post(client, org, envelope(call)))

    assert entry["toolCallId"] == "  call with spaces  "
    assert "result" in entry


def test_unusable_tool_call_ids_get_a_clean_error(client, org, db):
    for bad in ("x" * 201, "nul\x00id"):
        entry = only_result(post(client, org, envelope(tool_call(call_id=bad, **booking()))))
        assert entry["toolCallId"] == bad
        assert "no usable id" in entry["error"]
    assert count(db, "SELECT count(*) FROM appointments") == 0


def test_nul_in_the_vapi_call_id_does_not_break_the_booking(client, org):
    booked(post(client, org, envelope(tool_call(**booking()), call_id="call\x00id")))


def test_null_and_huge_numbers_are_spoken_plainly(client, org):
    message = error_of(post(client, org, envelope(tool_call(**booking(name=None)))))
    huge = error_of(
        post(
            client,
            org,
            b'{"message": {"type": "tool-calls", "toolCallList": [{"id": "c", '
            b'"function": {"name": "bookAppointment", "arguments": {"name": "A", '
            b'"start": "2030-01-07T10:00", "durationMinutes": 1e400}}}]}}',
        )
    )

    assert "the caller's name is missing" in message
    assert "the duration is not in a form I can use" in huge


def test_extreme_years_are_not_understood_rather_than_crashing(client, org):
    for start in ("9999-12-31T23:30", "0001-01-01T00:00+00:00"):
        message = error_of(post(client, org, envelope(tool_call(**booking(start=start)))))
        assert "Today is" in message


def test_chunked_body_over_the_limit_is_413(database_url, org):
    app = make_app(database_url, MAX_BODY_BYTES=4096)
    try:
        body = json.dumps(envelope(tool_call(**booking(notes="x" * 1900)), call_id="y" * 3000))
        response = app.test_client().post(
            "/api/vapi/tools",
            input_stream=io.BytesIO(body.encode()),
            headers={"Transfer-Encoding": "chunked", **org.headers},
            environ_overrides={"wsgi.input_terminated": True},
        )
    finally:
        app.extensions["booking_service"].engine.dispose()

    assert response.status_code == 413


def test_calls_past_the_request_budget_are_answered_without_being_run(database_url, org, db):
    app = make_app(database_url, REQUEST_BUDGET_S=0)
    try:
        body = envelope(tool_call(**booking()), tool_call(**booking(start=booking()["start"])))
        response = post(app.test_client(), org, body)
    finally:
        app.extensions["booking_service"].engine.dispose()

    results = response.get_json()["results"]
    assert [("ran out of time" in r["error"]) for r in results] == [True, True]
    assert count(db, "SELECT count(*) FROM appointments") == 0


def test_a_broken_schema_during_authentication_is_a_spoken_error_not_a_500(database_url, org, db):
    db.execute("ALTER TABLE organizations RENAME TO organizations_gone")
    app = make_app(database_url)
    try:
        response = post(app.test_client(), org, envelope(tool_call(**booking())))
    finally:
        app.extensions["booking_service"].engine.dispose()
        db.execute("ALTER TABLE organizations_gone RENAME TO organizations")

    assert response.status_code == 200
    assert "not reachable" in response.get_json()["results"][0]["error"]


def test_a_duplicate_waiting_longer_than_lock_timeout_still_gets_the_first_answer(
    database_url, org, db
):
    """The first call holds its ledger row past one lock_timeout; the duplicate retries its
    claim and returns the first call's stored answer instead of "not reachable"."""
    arguments = booking()
    stored = {"result": json.dumps({"status": "booked", "message": "from the first call"})}
    first = psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql"))
    # The same VAPI call and caller as the duplicate below, as a real first attempt would be.
    first.execute(
        "INSERT INTO tool_calls (org_id, tool_call_id, vapi_call_id, caller, limit_key, "
        "tool_name, fingerprint, answer) VALUES (%s, 'call_slow', 'call-1', '+14155550123', "
        "'call:call-1', 'bookAppointment', %s, %s)",
        (org.id, fingerprint("bookAppointment", arguments), json.dumps(stored)),
    )
    app = make_app(database_url, DB_LOCK_TIMEOUT_MS=300)
    timer = threading.Timer(0.5, first.commit)
    timer.start()
    try:
        started = time.monotonic()
        entry = only_result(
            post(app.test_client(), org, envelope(tool_call(call_id="call_slow", **arguments)))
        )
        waited = time.monotonic() - started
    finally:
        timer.join()
        first.close()
        app.extensions["booking_service"].engine.dispose()

    assert entry["result"] == stored["result"]
    assert waited >= 0.3  # it really waited past one lock_timeout
    assert count(db, "SELECT count(*) FROM appointments") == 0


def test_a_contact_without_a_name_gets_the_callers_name(client, org, db):
    db.execute("INSERT INTO contacts (org_id, email) VALUES (%s, 'sam@example.com')", (org.id,))
    booked(
        post(
            client,
            org,
            envelope(
                tool_call(**booking(name="Sam Okafor", email="sam@example.com")), customer=None
            ),
        )
    )

    assert db.execute("SELECT name FROM contacts").fetchall() == [("Sam Okafor",)]


def test_a_refused_booking_is_recorded_so_its_id_gets_the_same_refusal(client, org, db):
    """A refusal rolls back everything it did (no contact, no appointment) but is recorded
    under its id: refused changes count toward the change limit, and a repeat of the id gets
    the same answer rather than being run again. (Before the identity rules a refusal left no
    trace and the same id could be retried.)"""
    start = booking()["start"]
    booked(post(client, org, envelope(tool_call(**booking(start=start, phone="+12025550101")))))
    body = envelope(
        tool_call(call_id="call_retry", **booking(start=start)), customer="+12025550177"
    )
    first = error_of(post(client, org, body))
    again = error_of(post(client, org, body))

    assert "taken" in first and again == first
    assert count(db, "SELECT count(*) FROM contacts WHERE phone = '+12025550177'") == 0
    assert db.execute(
        "SELECT answer->>'error' FROM tool_calls WHERE tool_call_id = 'call_retry'"
    ).fetchall() == [(first,)]
    assert count(db, "SELECT count(*) FROM appointments") == 1


def test_sql_parameters_never_reach_logs():
    engine = make_engine(Settings(database_url="postgresql+psycopg://u@127.0.0.1:1/x"))

    assert engine.hide_parameters is True


def test_tracebacks_in_logs_are_masked():
    try:
        raise ValueError("caller +14155550123 could not be booked")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), None)
        import sys

        record.exc_info = sys.exc_info()
    line = MaskingFormatter("%(message)s").format(record)

    assert "+14155550123" not in line
    assert "***0123" in line
