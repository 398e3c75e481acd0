"""The lean booking path: one pooled connection per request, autocommit lookups, and an
appointment insert that needs no SAVEPOINT. Real PostgreSQL throughout."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event, text

from booking_service.errors import DatabaseUnavailable
from booking_service.services import booking as booking_service
from tests.helpers import booked, booking, count, envelope, local_start, post, tool_call


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
            uow.contacts.upsert_by_phone(org.id, "+14155550199", "Never Committed", None)
        # Left without commit: rolled back, not autocommitted.
        with scope.reader() as reader:
            assert reader.contacts.find_by_phone(org.id, "+14155550199") is None
        with scope.uow() as uow:
            uow.contacts.upsert_by_phone(org.id, "+14155550199", "Committed", None)
            uow.commit()
    assert count(db, "SELECT count(*) FROM contacts WHERE phone = '+14155550199'") == 1


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
