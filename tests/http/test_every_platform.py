"""One behaviour on every platform: the identity rules, caps, change limit and idempotency are
the pipeline's, so each test here runs through VAPI, Retell and ElevenLabs alike
(tests/support/platforms.py sends a tool call the way each platform does)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from booking_service.runtime.admission import Admission
from booking_service.voice.refusals import HAND_OVER, NEED_PROOF, NO_MATCH
from booking_service.voice.replies import BUSY
from tests.support.helpers import cli, count, envelope, local_start, post, tool_call
from tests.support.platforms import FRONTS, Front

VICTIM = "+14155550123"
ATTACKER = "+14155550999"


@pytest.fixture(params=list(FRONTS))
def front(request, runtime, org) -> Front:
    chosen = FRONTS[request.param]
    chosen.setup(runtime, org)
    return chosen


def _start(i: int) -> str:
    return local_start(days=5 + i // 8, hour=9 + i % 8)


def test_a_phone_caller_checks_books_finds_moves_and_cancels(client, org, db, front):
    def call(tool, call_id, **args):
        return front.call(client, org, tool, args, caller=VICTIM, call_id=call_id)

    free = call("checkAvailability", "c1", date=local_start(days=6)[:10]).result
    assert free and free["status"] == "available" and free["slots"]
    booked = call("bookAppointment", "c1", name="Maria Lopez", start=free["slots"][0]["start"])
    assert booked.result and booked.result["status"] == "booked", booked
    reference = booked.result["appointment"]["reference"]
    assert reference in booked.result["message"]

    found = call("findAppointments", "c2").result
    assert found and [a["reference"] for a in found["appointments"]] == [reference]

    moved = call("rescheduleAppointment", "c2", reference=reference, newStart=_start(9)).result
    assert moved and moved["status"] == "rescheduled"
    cancelled = call("cancelAppointment", "c3", reference=reference).result
    assert cancelled and cancelled["status"] == "cancelled"
    assert db.execute("SELECT reference, status FROM appointments").fetchall() == [
        (reference, "cancelled")
    ]
    platforms = {row[0] for row in db.execute("SELECT platform FROM tool_calls").fetchall()}
    assert platforms == {front.name}


def _victim_books(front, client, org, call_id: str) -> dict:
    """The victim's own phone call books a time (the first free start); its appointment."""
    booked = front.call(
        client,
        org,
        "bookAppointment",
        {"name": "Sam", "start": _start(0)},
        caller=VICTIM,
        call_id=call_id,
    ).result
    assert booked is not None
    return booked["appointment"]


def test_without_a_phone_call_a_number_lists_and_changes_nothing(client, org, db, front):
    start = _victim_books(front, client, org, "c1")["start"][:16]

    def web(tool, **args):
        return front.call(
            client, org, tool, args, caller=VICTIM, call_id="web-1", phone_call=False
        ).error

    assert web("findAppointments") is not None
    assert web("findAppointments", phone=VICTIM) == NEED_PROOF
    assert web("cancelAppointment", phone=VICTIM, start=start) == NEED_PROOF
    assert web("rescheduleAppointment", phone=VICTIM, start=start, newStart=_start(3)) == (
        NEED_PROOF
    )
    assert db.execute("SELECT status FROM appointments").fetchall() == [("booked",)]


def test_a_verified_caller_cannot_reach_another_callers_booking(client, org, db, front):
    reference = _victim_books(front, client, org, "v1")["reference"]

    listed = front.call(client, org, "findAppointments", {}, caller=ATTACKER, call_id="a1")
    cancel = front.call(
        client,
        org,
        "cancelAppointment",
        {"reference": reference, "phone": VICTIM},
        caller=ATTACKER,
        call_id="a2",
    )

    assert listed.result is not None and listed.result["appointments"] == []
    assert cancel.error is not None and reference not in cancel.error
    assert db.execute("SELECT status FROM appointments").fetchall() == [("booked",)]


def test_a_web_caller_with_reference_and_phone_may_cancel(client, org, db, front):
    reference = _victim_books(front, client, org, "v1")["reference"]

    wrong = front.call(
        client,
        org,
        "cancelAppointment",
        {"reference": reference, "phone": ATTACKER},
        caller=None,
        call_id="w1",
        phone_call=False,
    )
    right = front.call(
        client,
        org,
        "cancelAppointment",
        {"reference": reference, "phone": VICTIM},
        caller=None,
        call_id="w2",
        phone_call=False,
    )

    assert wrong.error == NO_MATCH
    assert right.result is not None and right.result["status"] == "cancelled"


def test_one_number_holds_at_most_four_upcoming_bookings(client, org, db, front):
    heard = [
        front.call(
            client,
            org,
            "bookAppointment",
            {"name": "Maria", "start": _start(i)},
            caller=VICTIM,
            call_id=f"call-{i}",
        )
        for i in range(5)
    ]

    assert all(h.result and h.result["status"] == "booked" for h in heard[:4])
    assert heard[4].error is not None and "4 upcoming appointments" in heard[4].error
    assert count(db, "SELECT count(*) FROM appointments") == 4


def test_one_call_makes_at_most_six_changes(client, org, db, front):
    heard = [
        front.call(
            client,
            org,
            "cancelAppointment",
            {"reference": f"NOPE{i:02d}"},
            caller=VICTIM,
            call_id="busy-call",
        )
        for i in range(6)
    ]
    seventh = front.call(
        client,
        org,
        "bookAppointment",
        {"name": "Maria", "start": _start(0)},
        caller=VICTIM,
        call_id="busy-call",
    )

    assert all(h.error for h in heard)
    assert seventh.error == HAND_OVER
    assert count(db, "SELECT count(*) FROM appointments") == 0


def test_a_repeated_identical_request_books_once_with_the_same_answer(client, org, db, front):
    args = {"name": "Maria", "start": _start(0)}
    if front.name == "vapi":  # VAPI's repeat carries the same toolCallId
        body = envelope(tool_call(call_id="tc-1", **args), customer=VICTIM, call_id="c1")
        first, again = (post(client, org, body).get_json() for _ in range(2))
    else:
        first, again = (
            front.call(client, org, "bookAppointment", args, caller=VICTIM, call_id="c1")
            for _ in range(2)
        )

    assert first == again
    assert count(db, "SELECT count(*) FROM appointments") == 1
    assert count(db, "SELECT count(*) FROM tool_calls") == 1


def test_bookings_for_numbers_nobody_verified_stop_at_the_daily_limit(app, client, org, db, front):
    cli(app, "org", "update", str(org.id), "--unverified-bookings-per-day", "2")

    def book_for(n: int, caller: str | None):
        args = {"name": "Sam", "start": _start(n), "phone": f"+1202555{n:04d}"}
        return front.call(
            client,
            org,
            "bookAppointment",
            args,
            caller=caller,
            call_id=f"c{n}",
            phone_call=caller is not None,
        )

    heard = [book_for(n, None) for n in range(3)]
    own = front.call(
        client,
        org,
        "bookAppointment",
        {"name": "Maria", "start": _start(5)},
        caller=VICTIM,
        call_id="own",
    )

    assert [h.result is not None for h in heard] == [True, True, False]
    assert heard[2].error and "other than the one you're calling from" in heard[2].error
    assert own.result is not None  # a verified caller's own number is not limited
    assert count(db, "SELECT count(*) FROM appointments") == 3


def _metric(client, line_start: str) -> float:
    text = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).get_data(as_text=True)
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(line_start)]
    return values[0] if values else 0.0


def test_every_tool_call_is_counted_in_the_same_metric(client, org, front):
    counted = 'booking_tool_calls_total{outcome="ok",tool="checkAvailability"}'
    before = _metric(client, counted)

    front.call(
        client,
        org,
        "checkAvailability",
        {"date": local_start(days=6)[:10]},
        caller=VICTIM,
        call_id="m1",
    )

    assert _metric(client, counted) == before + 1


def test_an_organization_over_its_share_of_the_worker_is_answered_busy(
    client, runtime, org, db, front
):
    runtime.admission = Admission(1)  # this test's app: one request per organization
    with runtime.admission.enter(org.id) as admitted:
        assert admitted  # a request of the organization still in flight
        heard = front.call(
            client,
            org,
            "bookAppointment",
            {"name": "Maria", "start": _start(0)},
            caller=VICTIM,
            call_id="busy",
        )

    assert heard.error == BUSY
    assert count(db, "SELECT count(*) FROM appointments") == 0


def test_without_a_database_every_platform_hears_that_it_is_not_reachable(unreachable_app):
    client = unreachable_app.test_client()
    args = {"name": "Maria", "start": _start(0)}

    secret = "bks_1_abcdefghijklmnopqrstuvwxyz"
    somebody = SimpleNamespace(id=1, secret=secret, headers={"Authorization": f"Bearer {secret}"})
    heard = [
        front.call(client, somebody, "bookAppointment", args, caller=VICTIM, call_id="c1")
        for front in FRONTS.values()
    ]

    assert all(h.error and "not reachable" in h.error for h in heard), heard
