"""Contact resolution against real PostgreSQL, including forced races between two sessions."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import psycopg
import pytest
from sqlalchemy import event

from booking_service.domain.times import ParsedStart, utc_now
from booking_service.use_cases import contacts
from booking_service.use_cases.booking import BookingRequest, book_appointment
from booking_service.use_cases.contacts import CallerIdentity, resolve_contact
from tests.support.helpers import booking, count, envelope, error_of, local_start, post, tool_call

NEW_YORK = ZoneInfo("America/New_York")


def request_for(who: CallerIdentity, days: int = 7) -> BookingRequest:
    start = datetime.fromisoformat(local_start(days=days)).replace(tzinfo=NEW_YORK)
    return BookingRequest(
        who=who,
        start=ParsedStart(start),
        duration_minutes=None,
        service=None,
        notes=None,
    )


def wait_until_blocked(db: psycopg.Connection, timeout: float = 10.0) -> None:
    """Wait until some booking_service session waits on a lock held by the test's session."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        blocked = db.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = 'booking_service' AND wait_event_type = 'Lock'"
        ).fetchone()[0]
        if blocked:
            return
        time.sleep(0.02)
    raise AssertionError("the booking never waited on the competing insert")


def book_while_rival_inserts(runtime, org, db, database_url, who, rival_sql, params):
    """Book for `who` while another session holds an uncommitted insert (`rival_sql`).

    The booking runs in a thread; once it waits on the rival's row, the rival commits, so
    the booking's own insert or update must lose the race. Returns the Booking.
    """
    rival = psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql"))
    rival.execute(rival_sql, params)
    outcome = {}

    def book():
        with runtime.uow() as uow:
            outcome["booking"] = book_appointment(
                uow, org.info, request_for(who), now=utc_now(), vapi_call_id=None, tool_call_id=None
            )
            uow.commit()

    thread = threading.Thread(target=book)
    thread.start()
    try:
        wait_until_blocked(db)
    finally:
        rival.commit()
        rival.close()
    thread.join(timeout=30)
    return outcome["booking"]


def test_email_insert_that_loses_the_race_recovers_and_still_commits(
    runtime, org, db, database_url
):
    """Forced deterministically: another session inserts the same email first and commits
    while our insert waits on the unique index, so ours must take the 23505 recovery path."""
    booked = book_while_rival_inserts(
        runtime,
        org,
        db,
        database_url,
        CallerIdentity(phone=None, email="race@example.com", name="Sam"),
        "INSERT INTO contacts (org_id, email, name) VALUES (%s, 'race@example.com', 'Rival')",
        (org.id,),
    )

    assert booked.contact_path == contacts.EMAIL_RACE_RECOVERED
    rival_id = db.execute("SELECT id FROM contacts WHERE email = 'race@example.com'").fetchone()[0]
    assert booked.contact_id == rival_id
    assert count(db, "SELECT count(*) FROM contacts") == 1
    # The savepoint rollback left the outer transaction usable: the appointment committed.
    assert db.execute("SELECT contact_id FROM appointments").fetchall() == [(rival_id,)]
    # An email is a claim: the contact keeps its first name; the booking has its own.
    assert db.execute("SELECT name FROM contacts").fetchone() == ("Rival",)
    assert db.execute("SELECT name FROM appointments").fetchone() == ("Sam",)


def test_a_phone_booking_that_loses_the_insert_race_joins_the_winner_unchanged(
    runtime, org, db, database_url
):
    """A rival inserts the same phone first; our upsert waits on the unique index, then takes
    the rival's row. Booking for that number is not its owner's booking: the winner keeps its
    name and gets no email, and the email-only contact with the email we gave is not touched."""
    db.execute(
        "INSERT INTO contacts (org_id, email, name) VALUES (%s, 'sam@example.com', 'Sam')",
        (org.id,),
    )
    booked = book_while_rival_inserts(
        runtime,
        org,
        db,
        database_url,
        CallerIdentity(phone="+14155550123", email="sam@example.com", name="Mallory"),
        "INSERT INTO contacts (org_id, phone, name) VALUES (%s, '+14155550123', 'Rival')",
        (org.id,),
    )

    assert booked.contact_path == contacts.PHONE_UPDATED
    assert db.execute("SELECT phone, email, name FROM contacts ORDER BY id").fetchall() == [
        (None, "sam@example.com", "Sam"),
        ("+14155550123", None, "Rival"),  # never an email from somebody else
    ]
    assert db.execute("SELECT name, email FROM appointments").fetchall() == [
        ("Mallory", "sam@example.com")
    ]


@pytest.mark.parametrize(
    ("who", "path"),
    [
        (CallerIdentity(phone="+14155550123", email=None, name="A"), contacts.PHONE_INSERTED),
        (CallerIdentity(phone=None, email="a@example.com", name="A"), contacts.EMAIL_INSERTED),
    ],
)
def test_first_and_second_resolution_paths(runtime, org, who, path):
    with runtime.uow() as uow:
        first = resolve_contact(uow, org.id, who, own_number=True)
        uow.commit()
    with runtime.uow() as uow:
        second = resolve_contact(uow, org.id, who, own_number=True)
        uow.commit()

    assert first.path == path
    assert second.path in (contacts.PHONE_UPDATED, contacts.EMAIL_FOUND)
    assert first.contact.id == second.contact.id


def test_a_phone_never_attaches_to_an_email_only_contact(runtime, org, db):
    with runtime.uow() as uow:
        email_only = resolve_contact(
            uow,
            org.id,
            CallerIdentity(phone=None, email="s@example.com", name="S"),
            own_number=False,
        )
        uow.commit()
    with runtime.uow() as uow:
        by_phone = resolve_contact(
            uow,
            org.id,
            CallerIdentity(phone="+14155550123", email="s@example.com", name="Mallory"),
            own_number=True,
        )
        uow.commit()

    assert by_phone.path == contacts.PHONE_INSERTED
    assert by_phone.contact.id != email_only.contact.id
    assert db.execute("SELECT phone, email, name FROM contacts ORDER BY id").fetchall() == [
        (None, "s@example.com", "S"),
        ("+14155550123", "s@example.com", "Mallory"),
    ]


@pytest.mark.parametrize(("own_number", "expected"), [(True, "New"), (False, "First")])
def test_only_the_numbers_own_caller_changes_its_contact(runtime, org, db, own_number, expected):
    for name, email, own in (("First", "first@example.com", True), ("New", None, own_number)):
        with runtime.uow() as uow:
            resolve_contact(
                uow,
                org.id,
                CallerIdentity(phone="+14155550123", email=email, name=name),
                own_number=own,
            )
            uow.commit()

    assert db.execute("SELECT name, email FROM contacts").fetchall() == [
        (expected, "first@example.com")
    ]


def test_caller_with_neither_phone_nor_email_costs_no_query(client, org, runtime, db):
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", record)
    try:
        error_of(post(client, org, envelope(tool_call(**booking()), customer=None)))
    finally:
        event.remove(runtime.engine, "before_cursor_execute", record)

    touched = [
        s for s in statements if any(t in s for t in ("contacts", "appointments", "tool_calls"))
    ]
    assert touched == []
    assert all("organizations" in s for s in statements)
