"""Odd and hostile input at the webhook's edge (issue #10's items 5, 8, 9 and 11)."""

from __future__ import annotations

import io
import json
import logging
import re
import time

import pytest

from booking_service.runtime.logging_setup import ContextFilter, JsonFormatter
from booking_service.use_cases.orgs import update_rules
from booking_service.use_cases.resources import add_resource
from booking_service.voice.http import arrival
from tests.support.app import make_app
from tests.support.helpers import booked, booking, count, envelope, error_of, post, tool_call


def test_more_than_fifty_tool_calls_are_refused_whole(client, org, db):
    body = envelope(*[tool_call(**booking()) for _ in range(51)])
    response = post(client, org, body)

    assert response.status_code == 400
    assert "50" in response.get_json()["error"]["message"]
    assert count(db, "SELECT count(*) FROM tool_calls") == 0


def test_fifty_tool_calls_are_each_answered(client, org):
    body = envelope(*[tool_call("checkAvailability", date="2020-01-01") for _ in range(50)])
    results = post(client, org, body).get_json()["results"]

    assert len(results) == 50
    assert all("error" in r or "result" in r for r in results)


def test_tool_call_id_and_name_are_always_strings(client, org):
    calls = [
        {"id": 12345, "type": "function", "function": {"name": "bookAppointment", "arguments": {}}},
        {"type": "function", "function": {"arguments": {}}},
    ]
    results = post(client, org, envelope(*calls)).get_json()["results"]

    assert [(r["toolCallId"], r["name"]) for r in results] == [
        ("12345", "bookAppointment"),
        ("", ""),
    ]


def test_an_organization_id_past_bigint_is_401_without_touching_the_database(client, caplog):
    with caplog.at_level(logging.INFO):
        response = client.post(
            "/api/vapi/tools/9223372036854775808",
            json=envelope(tool_call(**booking())),
        )

    assert response.status_code == 401
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_only_plain_request_ids_are_kept(client, org, caplog):
    with caplog.at_level(logging.INFO):
        post(client, org, envelope(tool_call(**booking())), {"X-Request-Id": "ok-id_1.2"})
        post(
            client,
            org,
            envelope(tool_call(**booking(start=None))),
            {"X-Request-Id": "x up=200 rt=0"},
        )
        post(client, org, envelope(tool_call(**booking(start=None))), {"X-Request-Id": "y" * 7000})

    ids = {getattr(r, "request_id", None) for r in caplog.records} - {None, "-", ""}
    assert "ok-id_1.2" in ids
    assert not any(" " in i or len(i) > 64 for i in ids)
    assert sum(bool(re.fullmatch(r"[0-9a-f]{16}", i)) for i in ids) >= 2


@pytest.mark.parametrize(
    "args",
    [
        {"date": "9999-12-31"},
        {"date": "0001-01-01"},
        {"from": "0001-01-01T00:00+14:00"},
        {"from": "2026-12-01", "to": "9999-12-31T23:59-12:00"},
    ],
)
def test_dates_near_the_ends_of_time_get_the_accepted_range_not_a_failure(client, org, args):
    entry = post(client, org, envelope(tool_call("checkAvailability", **args))).get_json()
    message = entry["results"][0]["error"]

    assert "between the years 1900 and 2200" in message and "Today is" in message


def test_one_number_at_two_organizations_is_two_callers(client, make_org, db):
    a, b = make_org(name="A"), make_org(name="B")
    mine = post(client, a, envelope(tool_call(**booking()))).get_json()["results"][0]
    theirs = post(client, b, envelope(tool_call(**booking()))).get_json()["results"][0]
    ref_a = json.loads(mine["result"])["appointment"]["reference"]
    ref_b = json.loads(theirs["result"])["appointment"]["reference"]

    listed = post(client, a, envelope(tool_call("findAppointments"))).get_json()["results"][0]
    cross = post(client, a, envelope(tool_call("cancelAppointment", reference=ref_b)))
    own = post(client, a, envelope(tool_call("cancelAppointment", reference=ref_a)))

    assert [x["reference"] for x in json.loads(listed["result"])["appointments"]] == [ref_a]
    assert "could not find" in cross.get_json()["results"][0]["error"]
    assert "result" in own.get_json()["results"][0]
    assert db.execute("SELECT reference, status FROM appointments ORDER BY id").fetchall() == [
        (ref_a, "cancelled"),
        (ref_b, "booked"),
    ]


def test_a_real_requests_json_log_lines_carry_no_unmasked_number(client, org):
    """What production writes (the context filter and the JSON formatter on a handler), for a
    booking for another number and a refused one: every line is JSON and no caller's number
    appears whole, in the message or in any field."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        post(client, org, envelope(tool_call(**booking(phone="+1 415 555 0177"))))
        post(
            client,
            org,
            envelope(tool_call(**booking(phone="(415) 555-0188", start="2020-01-06T10:00"))),
        )
    finally:
        root.removeHandler(handler)
        root.setLevel(level)

    lines = stream.getvalue().splitlines()
    assert lines and all(json.loads(line) for line in lines)
    for number in ("4155550123", "4155550177", "4155550188"):
        assert number not in stream.getvalue().replace(" ", "").replace("-", "")


def test_a_request_that_arrived_past_its_budget_is_not_run(client, org, db):
    arrived = f"t={time.time() - 13:.3f}"  # nginx's X-Request-Start: 13 s in its queue

    message = error_of(
        post(client, org, envelope(tool_call(**booking())), {"X-Request-Start": arrived})
    )

    assert "ran out of time" in message
    assert count(db, "SELECT count(*) FROM tool_calls") == 0


def test_the_arrival_time_counts_only_from_a_trusted_proxy(client, org):
    # A stranger reaching gunicorn directly cannot make its request look old (or new).
    response = client.post(
        "/api/vapi/tools",
        json=envelope(tool_call(**booking())),
        headers={**org.headers, "X-Request-Start": f"t={time.time() - 13:.3f}"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )

    booked(response)


@pytest.mark.parametrize(
    ("header", "queued"),
    [
        (None, 0.0),
        ("t=garbage", 0.0),
        ("t=nan", 0.0),
        ("t=inf", 0.0),
        (lambda now: f"t={now + 60:.3f}", 0.0),  # ahead of our clock: now
        (lambda now: f"t={now - 5:.3f}", 5.0),
        (lambda now: f"{(now - 5) * 1000:.0f}", 5.0),  # milliseconds
        (lambda now: f"t={(now - 5) * 1_000_000:.0f}", 5.0),  # microseconds
        (lambda now: f"t={now - 7200:.3f}", 0.0),  # hours old: a broken clock, not a queue
    ],
)
def test_arrival_reads_nginx_msec_and_ignores_nonsense(header, queued):
    value = header(time.time()) if callable(header) else header
    waited = time.monotonic() - arrival(value)
    assert waited == pytest.approx(queued, abs=0.2)


def test_availability_searches_stop_at_the_deadline(database_url, make_org, db, runtime):
    """Many resources, 5-minute slots, and a length that fits nowhere: every day of the
    horizon is searched in vain. Four such searches in one request used to run for tens of
    seconds; now the first stops at the budget and the rest are not started.

    The search must outlast the budget on the fastest machine: with 30 resources and a 1 s
    budget it once did by far, but a day's grid starts got cheaper (#30) and one search
    finished in 0.57 s. 100 resources and half a second leave a margin of about four."""
    org = make_org(timezone="UTC")
    update_rules(runtime.uow(), org.id, slot_minutes=5, horizon_days=730)
    db.execute("UPDATE working_hours SET closes = '16:55' WHERE org_id = %s", (org.id,))
    for n in range(100):
        add_resource(runtime.uow(), org.id, f"Chair {n}", ["mon-sun 09:00-16:55"])
    app = make_app(database_url, REQUEST_BUDGET_S=0.5)
    search = {"from": "2026-12-01", "to": "2027-01-31", "durationMinutes": 480}
    started = time.monotonic()
    try:
        response = post(
            app.test_client(),
            org,
            envelope(*(tool_call("checkAvailability", **search) for _ in range(4))),
        )
    finally:
        app.extensions["booking_service"].engine.dispose()
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert all("ran out of time" in r["error"] for r in response.get_json()["results"])
    # One budget (0.5 s) and one day's search past it, not four horizon-long searches.
    assert elapsed < 4, elapsed
