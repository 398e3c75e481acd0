"""Adopting an existing database: duplicates merged, nothing lost, constraint added under lock."""

from __future__ import annotations

import json
import threading

import psycopg
import pytest

from booking_service.use_cases.adoption import adopt_contacts
from tests.support.app import make_app


@pytest.fixture
def legacy(db, org):
    """The incident's database: un-normalised phones, duplicates, no uq_contacts_org_phone."""
    db.execute("ALTER TABLE contacts DROP CONSTRAINT uq_contacts_org_phone")
    db.execute("DROP INDEX uq_contacts_org_email_phoneless")
    other = db.execute(
        "INSERT INTO organizations (name, timezone, secret_hash, phone_region) "
        "VALUES ('Other', 'Europe/London', 'x', 'GB') RETURNING id"
    ).fetchone()[0]
    db.execute(
        "INSERT INTO resources (org_id, name, name_key) VALUES (%s, 'Main', 'main')", (other,)
    )
    contacts = [
        (org.id, "Maria", "(415) 555-0123", None, "2026-01-01"),
        (org.id, None, "415.555.0123", "Maria@Example.com", "2026-02-01"),
        (org.id, "Maria Lopez", "+14155550123", None, "2026-03-01"),
        (org.id, "Sam", None, "sam@example.com", "2026-01-01"),
        (org.id, "Sam O.", None, " SAM@example.com", "2026-02-01"),
        (org.id, "Unknown", "call me", "who@example.com", "2026-01-01"),
        (other, "London Maria", "+14155550123", None, "2026-01-01"),
    ]
    ids = [
        db.execute(
            "INSERT INTO contacts (org_id, name, phone, email, updated_at) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            row,
        ).fetchone()[0]
        for row in contacts
    ]
    resources = dict(db.execute("SELECT org_id, id FROM resources").fetchall())
    for n, contact_id in enumerate(ids):
        org_id = contacts[n][0]
        db.execute(
            "INSERT INTO appointments (org_id, contact_id, resource_id, reference, starts_at, "
            "ends_at, blocked_until) VALUES (%s, %s, %s, %s, "
            "'2030-01-07 10:00Z'::timestamptz + make_interval(hours => %s), "
            "'2030-01-07 10:30Z'::timestamptz + make_interval(hours => %s), "
            "'2030-01-07 10:30Z'::timestamptz + make_interval(hours => %s))",
            (org_id, contact_id, resources[org_id], f"REF{n:03d}", n, n, n),
        )
    return ids


def test_adoption_merges_duplicates_keeps_every_appointment_and_adds_the_constraint(
    runtime, db, org, legacy
):
    before = db.execute("SELECT reference FROM appointments ORDER BY reference").fetchall()
    report = adopt_contacts(runtime.uow())

    rows = db.execute(
        "SELECT org_id, name, phone, email FROM contacts ORDER BY org_id, id"
    ).fetchall()
    assert rows == [
        (org.id, "Maria Lopez", "+14155550123", "maria@example.com"),
        (org.id, "Sam O.", None, "sam@example.com"),
        (org.id, "Unknown", "call me", "who@example.com"),
        (rows[3][0], "London Maria", "+14155550123", None),
    ]
    after = db.execute("SELECT reference FROM appointments ORDER BY reference").fetchall()
    assert after == before  # no appointment lost
    maria = db.execute(
        "SELECT count(*) FROM appointments a JOIN contacts c ON c.id = a.contact_id "
        "WHERE c.org_id = %s AND c.phone = '+14155550123'",
        (org.id,),
    ).fetchone()
    assert maria == (3,)
    assert report.appointments_moved == 3
    assert len(report.merged) == 2
    assert report.unparseable_phones == [legacy[5]]
    assert set(report.added) == {"uq_contacts_org_phone", "uq_contacts_org_email_phoneless"}
    dupes = db.execute(
        "SELECT count(*) FROM (SELECT 1 FROM contacts WHERE phone IS NOT NULL "
        "GROUP BY org_id, phone HAVING count(*) > 1) d"
    ).fetchone()
    assert dupes == (0,)


def test_schema_check_names_the_gap_before_and_is_clean_after(database_url, legacy):
    app = make_app(database_url)
    try:
        runner = app.test_cli_runner()
        before = runner.invoke(args=["schema", "check"])
        adopted = runner.invoke(args=["schema", "adopt"])
        after = runner.invoke(args=["schema", "check"])
    finally:
        app.extensions["booking_service"].engine.dispose()

    assert before.exit_code == 1 and "uq_contacts_org_phone" in before.stderr
    assert adopted.exit_code == 0 and json.loads(adopted.stdout)["merged"]
    assert after.exit_code == 0, after.stderr


def test_writers_wait_for_adoption_and_cannot_sneak_a_duplicate_in(
    runtime, database_url, org, legacy
):
    plain = database_url.replace("postgresql+psycopg", "postgresql")
    outcome = {}

    def concurrent_writer():
        with psycopg.connect(plain, options="-c lock_timeout=200") as conn:
            try:
                conn.execute(
                    "INSERT INTO contacts (org_id, phone) VALUES (%s, '+14155550123')", (org.id,)
                )
                outcome["insert"] = "done"
            except psycopg.errors.LockNotAvailable:
                outcome["insert"] = "waited"

    def while_locked():
        writer = threading.Thread(target=concurrent_writer)
        writer.start()
        writer.join(timeout=10)

    adopt_contacts(runtime.uow(), before_commit=while_locked)

    assert outcome["insert"] == "waited"
    with psycopg.connect(plain) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO contacts (org_id, phone) VALUES (%s, '+14155550123')", (org.id,))


def test_emails_differing_only_in_case_or_spaces_are_merged_not_a_failed_adoption(runtime, db, org):
    db.execute("ALTER TABLE contacts DROP CONSTRAINT uq_contacts_org_phone")
    db.execute("DROP INDEX uq_contacts_org_email_phoneless")
    for email in ("Bob@Example", "bob@example", " BOB@example "):
        db.execute("INSERT INTO contacts (org_id, email) VALUES (%s, %s)", (org.id, email))

    report = adopt_contacts(runtime.uow())

    assert db.execute("SELECT email FROM contacts").fetchall() == [("bob@example",)]
    assert len(report.merged) == 1
