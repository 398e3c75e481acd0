"""Concurrent bookings through the webhook: real commits on separate connections."""

from __future__ import annotations

import json

import pytest

from tests.conftest import make_app
from tests.helpers import booking, count, envelope, local_start, post, run_concurrently, tool_call

THREADS = 20


@pytest.fixture
def wide_app(database_url):
    """An app whose pool lets every thread hold its own connection at once."""
    application = make_app(database_url, DB_POOL_SIZE=THREADS)
    yield application
    application.extensions["booking_service"].engine.dispose()


def _book_all(app, org, bodies):
    def work(i):
        response = post(app.test_client(), org, bodies[i])
        assert response.status_code == 200
        return response.get_json()["results"][0]

    results = run_concurrently(len(bodies), work)
    failures = [r for r in results if isinstance(r, BaseException) or "error" in r]
    return results, failures


def test_twenty_threads_booking_the_same_new_phone_make_one_contact(wide_app, org, db):
    bodies = [
        envelope(
            tool_call(
                **booking(
                    start=local_start(days=7 + i // 8, hour=9 + i % 8), email=f"m{i}@example.com"
                )
            )
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
    bodies = [
        envelope(
            tool_call(**booking(email="same@example.com", start=local_start(days=8 + i))),
            customer=None,
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
