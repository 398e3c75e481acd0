"""Failures the caller must still hear about: stuck locks and unexpected bugs."""

from __future__ import annotations

import logging
import time

import psycopg
from psycopg.errors import LockNotAvailable

from booking_service.voice import tools
from tests.support.app import make_app
from tests.support.helpers import booking, count, envelope, error_of, post, tool_call


def _causes(exc: BaseException | None):
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def test_a_stuck_lock_becomes_a_spoken_error_in_time_and_writes_nothing(
    database_url, org, db, caplog
):
    app = make_app(database_url, DB_LOCK_TIMEOUT_MS=300)
    holder = psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql"))
    try:
        holder.execute("LOCK TABLE contacts IN EXCLUSIVE MODE")
        started = time.monotonic()
        with caplog.at_level(logging.ERROR):
            message = error_of(post(app.test_client(), org, envelope(tool_call(**booking()))))
        waited = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
        app.extensions["booking_service"].engine.dispose()

    assert "not reachable right now" in message
    # The lock timeout (0.3 s) ended the wait: not the statement timeout (5 s), not the budget.
    assert 0.3 <= waited < 2.0, waited
    failure = next(r for r in caplog.records if "database unavailable" in r.getMessage())
    assert failure.exc_info is not None
    assert any(isinstance(e, LockNotAvailable) for e in _causes(failure.exc_info[1]))
    for table in ("contacts", "appointments", "tool_calls"):
        assert count(db, f"SELECT count(*) FROM {table}") == 0


def test_an_unexpected_error_is_logged_with_ids_and_answered_without_internals(
    database_url, org, monkeypatch, caplog
):
    def broken(*args, **kwargs):
        raise RuntimeError('SELECT 1 FROM contacts -- psycopg says constraint "x" Traceback')

    monkeypatch.setattr(tools, "book_appointment", broken)
    app = make_app(database_url, TESTING=False)
    try:
        with caplog.at_level(logging.INFO):
            response = post(
                app.test_client(),
                org,
                envelope(tool_call(call_id="call_boom", **booking()), call_id="vapi-call-9"),
            )
    finally:
        app.extensions["booking_service"].engine.dispose()

    message = error_of(response)
    assert "something went wrong on our side" in message
    failure = next(r for r in caplog.records if r.getMessage() == "tool call failed unexpectedly")
    assert failure.exc_info is not None
    assert (failure.org_id, failure.call_id, failure.tool_call_id) == (
        str(org.id),
        "vapi-call-9",
        "call_boom",
    )
