"""Concurrent bookings through the webhook: real commits on separate connections."""

from __future__ import annotations

import json

import pytest

from booking_service.use_cases.orgs import update_rules
from booking_service.voice.refusals import HAND_OVER
from tests.support.app import make_app
from tests.support.helpers import (
    booking,
    count,
    envelope,
    local_start,
    post,
    run_concurrently,
    tool_call,
)

THREADS = 20


@pytest.fixture
def wide_app(database_url):
    """An app whose pool lets every thread hold its own connection at once."""
    application = make_app(database_url, DB_POOL_SIZE=THREADS)
    yield application
    application.extensions["booking_service"].engine.dispose()


def _allow_many_upcoming(app, org) -> None:
    """These tests are about one contact per caller, not the per-caller cap (tested below)."""
    update_rules(app.extensions["booking_service"].uow(), org.id, max_upcoming_per_caller=100)


def _book_all(app, org, bodies):
    def work(i):
        response = post(app.test_client(), org, bodies[i])
        assert response.status_code == 200
        return response.get_json()["results"][0]

    results = run_concurrently(len(bodies), work)
    failures = [r for r in results if isinstance(r, BaseException) or "error" in r]
    return results, failures


def test_twenty_threads_booking_the_same_new_phone_make_one_contact(wide_app, org, db):
    _allow_many_upcoming(wide_app, org)
    bodies = [
        envelope(
            tool_call(
                **booking(
                    start=local_start(days=7 + i // 8, hour=9 + i % 8), email=f"m{i}@example.com"
                )
            ),
            call_id=f"vapi-call-{i}",  # separate calls: the change limit is not what this tests
        )
        for i in range(THREADS)
    ]
    _, failures = _book_all(wide_app, org, bodies)

    assert failures == []
    assert count(db, "SELECT count(*) FROM contacts") == 1
    assert count(db, "SELECT count(*) FROM appointments") == THREADS
    assert count(db, "SELECT count(DISTINCT reference) FROM appointments") == THREADS


def test_twenty_threads_booking_the_same_new_email_without_phone_make_one_contact(
    wide_app, org, db
):
    _allow_many_upcoming(wide_app, org)
    bodies = [
        envelope(
            tool_call(**booking(email="same@example.com", start=local_start(days=8 + i))),
            customer=None,
            call_id=f"vapi-call-{i}",
        )
        for i in range(THREADS)
    ]
    _, failures = _book_all(wide_app, org, bodies)

    assert failures == []
    assert db.execute("SELECT phone, email FROM contacts").fetchall() == [
        (None, "same@example.com")
    ]
    assert count(db, "SELECT count(*) FROM appointments") == THREADS


def test_the_same_tool_call_id_concurrently_books_once_with_identical_answers(wide_app, org, db):
    body = envelope(tool_call(call_id="call_concurrent", **booking()))
    results, failures = _book_all(wide_app, org, [body] * THREADS)

    assert failures == []
    assert count(db, "SELECT count(*) FROM appointments") == 1
    assert count(db, "SELECT count(*) FROM tool_calls") == 1
    answers = {r["result"] for r in results}
    assert len(answers) == 1
    assert json.loads(answers.pop())["status"] == "booked"


def _same_slot_bodies(start: str) -> list[dict]:
    # Twenty callers are twenty VAPI calls (refusals count toward one call's change limit).
    return [
        envelope(
            tool_call(**booking(start=start, phone=f"+1202555{i:04d}")),
            customer=f"+1202555{i:04d}",
            call_id=f"vapi-race-{i}",
        )
        for i in range(THREADS)
    ]


@pytest.mark.parametrize("resources", [1, 2])
def test_twenty_callers_racing_for_one_slot_get_exactly_one_booking_per_resource(
    wide_app, org, db, resources
):
    from booking_service.use_cases.resources import add_resource

    for n in range(1, resources):
        add_resource(
            wide_app.extensions["booking_service"].uow(),
            org.id,
            f"Chair {n}",
            ["mon-fri 09:00-17:00"],
        )
    start = local_start(days=5, hour=11)
    results, _ = _book_all(wide_app, org, _same_slot_bodies(start))

    assert not any(isinstance(r, BaseException) for r in results)
    winners = [r for r in results if "result" in r]
    losers = [r for r in results if "error" in r]
    assert len(winners) == resources
    assert len(losers) == THREADS - resources
    for loser in losers:
        assert "taken" in loser["error"]
        assert "The nearest free time" in loser["error"]
    assert count(db, "SELECT count(*) FROM appointments WHERE status = 'booked'") == resources
    assert count(db, "SELECT count(DISTINCT resource_id) FROM appointments") == resources


def test_two_concurrent_reschedules_into_one_free_slot_one_wins_one_keeps_its_original(
    wide_app, org, db
):
    client = wide_app.test_client()
    originals = {}
    for i, hour in enumerate((9, 10)):
        phone = f"+1202555010{i}"
        body = envelope(tool_call(**booking(start=local_start(days=5, hour=hour), phone=phone)))
        response = post(client, org, body)
        originals[phone] = json.loads(response.get_json()["results"][0]["result"])["appointment"]
    target = local_start(days=5, hour=15)
    phones = list(originals)
    bodies = [
        envelope(
            tool_call(
                "rescheduleAppointment",
                reference=originals[phone]["reference"],
                newStart=target,
            ),
            customer=phone,
        )
        for phone in phones
    ]
    results, _ = _book_all(wide_app, org, bodies)

    assert not any(isinstance(r, BaseException) for r in results)
    assert sorted("result" in r for r in results) == [False, True]
    loser = next(r for r in results if "error" in r)
    assert "stays at" in loser["error"] or "taken" in loser["error"]
    rows = db.execute(
        "SELECT reference, to_char(starts_at AT TIME ZONE 'America/New_York', 'HH24:MI') "
        "FROM appointments WHERE status = 'booked' ORDER BY starts_at"
    ).fetchall()
    starts_by_ref = dict(rows)
    assert sorted(starts_by_ref.values()) in (["09:00", "15:00"], ["10:00", "15:00"])
    assert len(rows) == 2


def test_parallel_tool_calls_of_one_vapi_call_cannot_pass_the_change_limit(database_url, org, db):
    app = make_app(database_url, DB_POOL_SIZE=12, MAX_CHANGES_PER_CALL=6)
    bodies = [
        envelope(
            tool_call(**booking(start=local_start(days=5 + i), phone=f"+1202555{i:04d}")),
            call_id="one-looping-call",
        )
        for i in range(12)
    ]
    try:
        results, _ = _book_all(app, org, bodies)
    finally:
        app.extensions["booking_service"].engine.dispose()

    assert sum("result" in r for r in results) == 6
    assert count(db, "SELECT count(*) FROM appointments") == 6


def test_an_email_only_caller_reissuing_one_booking_concurrently_gets_one_appointment(
    wide_app, org, db
):
    """A model re-issuing one booking with new toolCallIds within its call gets it back; an
    email is a claim, so only the same VAPI call is given an existing booking back."""
    from booking_service.use_cases.resources import add_resource

    add_resource(
        wide_app.extensions["booking_service"].uow(), org.id, "Chair 2", ["mon-fri 09:00-17:00"]
    )
    start = local_start(days=5, hour=11)
    bodies = [
        envelope(
            tool_call(**booking(start=start, email="web@example.com")),
            customer=None,
            call_id="vapi-web",
        )
        for _ in range(6)  # the default change limit of one call
    ]
    results, failures = _book_all(wide_app, org, bodies)

    assert failures == []
    assert count(db, "SELECT count(*) FROM appointments") == 1
    assert len({json.loads(r["result"])["appointment"]["reference"] for r in results}) == 1


def test_a_verified_caller_reissuing_one_booking_from_several_calls_gets_one_appointment(
    wide_app, org, db
):
    """The caller ID is proof, so their own booking at that time is theirs to get back from
    any call; the contact's row lock makes concurrent re-issues see each other."""
    from booking_service.use_cases.resources import add_resource

    add_resource(
        wide_app.extensions["booking_service"].uow(), org.id, "Chair 2", ["mon-fri 09:00-17:00"]
    )
    start = local_start(days=5, hour=11)
    bodies = [
        envelope(tool_call(**booking(start=start)), call_id=f"vapi-{i}") for i in range(THREADS)
    ]
    results, failures = _book_all(wide_app, org, bodies)

    assert failures == []
    assert count(db, "SELECT count(*) FROM appointments") == 1
    answers = [json.loads(r["result"]) for r in results]
    assert len({a["appointment"]["reference"] for a in answers}) == 1
    assert sorted(a["alreadyBooked"] for a in answers) == [False] + [True] * (THREADS - 1)


def _distinct_starts(n: int) -> list[str]:
    return [local_start(days=5 + i // 8, hour=9 + i % 8) for i in range(n)]


@pytest.mark.parametrize("caller", ["phone", "email"])
def test_concurrent_bookings_for_one_caller_never_pass_the_upcoming_cap(wide_app, org, db, caller):
    """Twelve calls book for one caller at once, each at a free time of its own: exactly the
    cap (4) succeed. The count runs under the contact's row lock (the phone upsert's, or the
    explicit lock on the email path), so no two bookings can both see room for one more."""
    who = {"customer": "+14155550123"} if caller == "phone" else {"customer": None}
    extra = {} if caller == "phone" else {"email": "web@example.com"}
    bodies = [
        envelope(tool_call(**booking(start=start, **extra)), call_id=f"vapi-cap-{i}", **who)
        for i, start in enumerate(_distinct_starts(12))
    ]
    results, failures = _book_all(wide_app, org, bodies)

    assert not any(isinstance(r, BaseException) for r in results)
    assert sum("result" in r for r in results) == 4
    assert all("member of staff" in r["error"] for r in failures)
    assert count(db, "SELECT count(*) FROM appointments WHERE status = 'booked'") == 4
    assert count(db, "SELECT count(*) FROM contacts") == 1


def test_concurrent_requests_without_a_call_id_cannot_pass_the_change_limit(wide_app, org, db):
    """A verified caller whose requests carry no call id is limited per caller: twelve such
    requests at once make exactly MAX_CHANGES_PER_CALL (6) changes."""
    _allow_many_upcoming(wide_app, org)
    bodies = []
    for start in _distinct_starts(12):
        body = envelope(tool_call(**booking(start=start)))
        del body["message"]["call"]["id"]
        bodies.append(body)
    results, failures = _book_all(wide_app, org, bodies)

    assert not any(isinstance(r, BaseException) for r in results)
    assert sum("result" in r for r in results) == 6
    assert all(r["error"] == HAND_OVER for r in failures)
    assert count(db, "SELECT count(*) FROM appointments") == 6


def test_concurrent_refused_changes_of_one_call_count_toward_its_limit(wide_app, org, db):
    """Twelve cancels of one call at once, each of a reference nobody holds: six are refused
    as not found and six are handed to staff. A refusal is recorded in the transaction that
    holds the call's lock, so a waiting change counts it."""
    bodies = [
        envelope(
            tool_call("cancelAppointment", reference=f"NOPE{i:02d}"), call_id="one-guessing-call"
        )
        for i in range(12)
    ]
    results, _ = _book_all(wide_app, org, bodies)

    assert not any(isinstance(r, BaseException) for r in results)
    errors = [r["error"] for r in results]
    assert sum("could not find that appointment" in e for e in errors) == 6
    assert sum(e == HAND_OVER for e in errors) == 6
    key = "call:one-guessing-call"
    assert count(db, "SELECT count(*) FROM tool_calls WHERE limit_key = %s", key) == 12
