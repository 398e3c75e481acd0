"""The lean booking path: one pooled connection per request, autocommit lookups, and an
appointment insert that needs no SAVEPOINT. Real PostgreSQL throughout."""

from __future__ import annotations

import json
import logging
import os
import socket
import time

import psycopg
import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.orm import sessionmaker

from booking_service.domain.errors import DatabaseUnavailable
from booking_service.persistence.unit_of_work import ConnectionScope
from booking_service.use_cases import booking as booking_service
from booking_service.voice import replies
from tests.support.app import make_app
from tests.support.helpers import (
    booked,
    booking,
    count,
    envelope,
    error_of,
    local_start,
    post,
    tool_call,
)


def test_one_webhook_request_checks_out_one_pooled_connection(client, runtime, org, db):
    checkouts = []
    event.listen(runtime.engine, "checkout", lambda *args: checkouts.append(1))
    body = envelope(
        tool_call(**booking(start=local_start(hour=10))),
        tool_call(**booking(start=local_start(hour=11))),
        tool_call("findAppointments"),
    )
    response = post(client, org, body)
    results = response.get_json()["results"]
    assert [json.loads(r["result"])["status"] for r in results[:2]] == ["booked", "booked"]
    assert len(checkouts) == 1
    assert count(db, "SELECT count(*) FROM appointments WHERE org_id = %s", org.id) == 2


def test_a_unit_after_an_autocommit_lookup_is_a_real_transaction(runtime, org, db):
    with runtime.connection_scope() as scope:
        with scope.reader() as reader:
            assert reader.organizations.get(org.id) is not None
        with scope.uow() as uow:
            uow.contacts.upsert_by_phone(
                org.id, "+14155550199", "Never Committed", None, owner=True
            )
        # Left without commit: rolled back, not autocommitted.
        with scope.reader() as reader:
            assert reader.contacts.find_by_phone(org.id, "+14155550199") is None
        with scope.uow() as uow:
            uow.contacts.upsert_by_phone(org.id, "+14155550199", "Committed", None, owner=True)
            uow.commit()
    assert count(db, "SELECT count(*) FROM contacts WHERE phone = '+14155550199'") == 1


def test_a_pooled_connection_an_autocommit_lookup_used_is_transactional_again(database_url, org):
    """A request's first unit of work sets no isolation level on its connection (#30): that
    relies on the pool putting back the default when the last request's autocommit lookup
    returned the connection."""
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        with ConnectionScope(engine, sessionmaker(bind=engine)) as scope, scope.reader() as r:
            assert r.session.connection().connection.dbapi_connection.autocommit
            pid = r.session.execute(text("SELECT pg_backend_pid()")).scalar()
        with ConnectionScope(engine, sessionmaker(bind=engine)) as scope:
            with scope.uow() as uow:
                assert uow.session.execute(text("SELECT pg_backend_pid()")).scalar() == pid
                assert not uow.session.connection().connection.dbapi_connection.autocommit
                uow.contacts.upsert_by_phone(org.id, "+14155550198", "Gone", None, owner=True)
            # Left without commit: rolled back, not autocommitted.
            with scope.reader() as reader:
                assert reader.contacts.find_by_phone(org.id, "+14155550198") is None
    finally:
        engine.dispose()


def test_a_connection_that_dies_mid_request_is_replaced_for_the_next_unit(runtime, org, db):
    with runtime.connection_scope() as scope:
        with scope.reader() as reader:
            pid = reader.session.execute(text("SELECT pg_backend_pid()")).scalar()
        db.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # The unit that meets the dead connection reports the outage honestly ...
        with pytest.raises(DatabaseUnavailable), scope.uow() as uow:
            uow.session.execute(text("SELECT 1"))
        # ... and the next one runs on a fresh connection.
        with scope.uow() as uow:
            assert uow.session.execute(text("SELECT pg_backend_pid()")).scalar() != pid


def test_pooled_connections_the_server_closed_are_replaced_before_use(runtime, org, db):
    """No pre-ping round trip: a checkout sees locally that the server ended the connection
    (as after a restart) and takes a fresh one, so the request meets no error."""
    pids = set()
    with runtime.connection_scope() as first, runtime.connection_scope() as second:
        for scope in (first, second):
            with scope.reader() as reader:
                pids.add(reader.session.execute(text("SELECT pg_backend_pid()")).scalar())
    assert len(pids) == 2  # both back in the pool now, idle
    for pid in pids:
        db.execute("SELECT pg_terminate_backend(%s)", (pid,))
    deadline = time.monotonic() + 10
    while count(db, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", list(pids)):
        assert time.monotonic() < deadline
        time.sleep(0.02)

    for _ in range(3):  # whichever pooled connection each checkout gets
        with runtime.uow() as uow:
            pid = uow.session.execute(text("SELECT pg_backend_pid()")).scalar()
        assert pid not in pids


def test_pooled_connections_probe_an_idle_peer_with_tcp_keepalives(runtime):
    """A host that vanishes sends no goodbye: keepalives let the kernel find it, so the
    checkout's poll sees a dead connection without a pre-ping."""
    with runtime.uow() as uow:
        fd = uow.session.connection().connection.dbapi_connection.fileno()
        probe = socket.socket(fileno=os.dup(fd))
    with probe:
        assert probe.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert probe.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
        assert probe.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3


def test_a_reference_collision_is_retried_with_a_new_reference(client, org, db, monkeypatch):
    first = booked(post(client, org, envelope(tool_call(**booking(start=local_start(hour=10))))))
    fresh = "CCCCCC" if first["appointment"]["reference"] != "CCCCCC" else "DDDDDD"
    references = iter([first["appointment"]["reference"], fresh])
    monkeypatch.setattr(booking_service, "new_reference", lambda: next(references))
    second = booked(
        post(
            client,
            org,
            envelope(tool_call(**booking(start=local_start(hour=11))), customer="+14155550124"),
        )
    )
    assert second["appointment"]["reference"] == fresh
    rows = db.execute(
        "SELECT reference, contact_id FROM appointments WHERE org_id = %s ORDER BY id", (org.id,)
    ).fetchall()
    assert [r[0] for r in rows] == [first["appointment"]["reference"], fresh]
    assert rows[0][1] != rows[1][1]


def test_a_taken_slot_is_refused_without_touching_the_booking_that_holds_it(client, org, db):
    first = booked(post(client, org, envelope(tool_call(**booking()))))
    # Another caller, same time, one resource: the pre-check sees it taken.
    response = post(client, org, envelope(tool_call(**booking()), customer="+14155550124"))
    error = response.get_json()["results"][0]["error"]
    assert "taken" in error
    assert count(db, "SELECT count(*) FROM appointments WHERE org_id = %s", org.id) == 1
    assert (
        count(
            db,
            "SELECT count(*) FROM appointments WHERE reference = %s",
            first["appointment"]["reference"],
        )
        == 1
    )


def test_a_unique_clash_other_than_time_or_reference_is_an_error_not_taken(
    database_url, org, db, caplog
):
    # The id sequence behind the data (rows copied in with explicit ids): the insert is
    # refused by the primary key. The caller must not hear that a free time was taken.
    app = make_app(database_url, TESTING=False)
    client = app.test_client()
    try:
        booked(post(client, org, envelope(tool_call(**booking(start=local_start(hour=10))))))
        db.execute("SELECT setval(pg_get_serial_sequence('appointments', 'id'), 1, false)")
        with caplog.at_level(logging.INFO):
            message = error_of(
                post(
                    client,
                    org,
                    envelope(
                        tool_call(**booking(start=local_start(hour=11))), customer="+14155550124"
                    ),
                )
            )
    finally:
        app.extensions["booking_service"].engine.dispose()
    assert message == replies.UNEXPECTED
    assert "taken" not in message
    assert "unexpected constraint" in caplog.text
    assert count(db, "SELECT count(*) FROM appointments WHERE org_id = %s", org.id) == 1


def test_a_pool_timeout_while_checking_out_is_an_outage(database_url):
    engine = create_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=0.3)
    held = engine.connect()
    try:
        scope = ConnectionScope(engine, sessionmaker(bind=engine))
        with scope, pytest.raises(DatabaseUnavailable), scope.uow() as uow:
            uow.session.execute(text("SELECT 1"))
    finally:
        held.close()
        engine.dispose()


def _hold_call_lock(database_url: str, org_id: int, call_id: str) -> psycopg.Connection:
    holder = psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql"))
    holder.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{org_id}:call:{call_id}",)
    )
    return holder


def test_a_repeated_tool_call_gets_its_answer_without_waiting_for_its_call(database_url, org, db):
    app = make_app(database_url, DB_LOCK_TIMEOUT_MS=300)
    client = app.test_client()
    body = envelope(tool_call(call_id="call_once", **booking()), call_id="vapi-busy")
    try:
        first = booked(post(client, org, body))
        # Another tool call of the same VAPI call is running (it holds the call's lock).
        holder = _hold_call_lock(database_url, org.id, "vapi-busy")
        try:
            again = booked(post(client, org, body))
        finally:
            holder.rollback()
            holder.close()
    finally:
        app.extensions["booking_service"].engine.dispose()
    assert again == first
    assert count(db, "SELECT count(*) FROM appointments WHERE org_id = %s", org.id) == 1


def test_waiting_for_the_call_lock_stops_within_the_request_budget(database_url, org, db, caplog):
    # Each wait lasts lock_timeout (0.3 s); with 0.5 s of budget a second wait would end too
    # late, so the caller hears "not reachable" after one.
    app = make_app(database_url, DB_LOCK_TIMEOUT_MS=300, REQUEST_BUDGET_S=0.5)
    holder = _hold_call_lock(database_url, org.id, "vapi-busy")
    try:
        with caplog.at_level(logging.INFO):
            message = error_of(
                post(app.test_client(), org, envelope(tool_call(**booking()), call_id="vapi-busy"))
            )
    finally:
        holder.rollback()
        holder.close()
        app.extensions["booking_service"].engine.dispose()
    assert message == replies.UNAVAILABLE
    assert caplog.text.count("is still running (wait") == 1
    for table in ("contacts", "appointments", "tool_calls"):
        assert count(db, f"SELECT count(*) FROM {table}") == 0
