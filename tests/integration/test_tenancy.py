"""Every tenant table is keyed by organization: what makes sharding by org_id (Citus) fit, and
what keeps one organization's rows from pointing at another's."""

from __future__ import annotations

import psycopg
import pytest

# Reference tables; every other table belongs to one organization. The web page's accounts
# are among them on purpose: sign-in finds a user by email before any organization is known
# (a user still belongs to one, by its foreign key), and the sign-in throttle counts per email
# so that a lock says nothing about which organization, if any, has that email.
REFERENCE_TABLES = {"organizations", "alembic_version", "users", "sign_in_throttles"}

CONSTRAINTS = """
SELECT rel.relname AS tbl, con.conname AS name, con.contype AS kind,
       ARRAY(SELECT att.attname FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
             JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = k.attnum
             ORDER BY k.ord)::text[] AS columns
FROM pg_constraint con
JOIN pg_class rel ON rel.oid = con.conrelid
JOIN pg_namespace ns ON ns.oid = rel.relnamespace
WHERE ns.nspname = current_schema() AND con.contype IN ('u', 'x', 'f')
"""


def test_every_unique_exclusion_and_foreign_key_constraint_leads_with_org_id(db):
    rows = db.execute(CONSTRAINTS).fetchall()
    tenant = [r for r in rows if r[0] not in REFERENCE_TABLES]
    # A foreign key to the organizations table itself is how a table names its tenant.
    offending = [
        f"{table}.{name} ({', '.join(columns)})"
        for table, name, kind, columns in tenant
        if columns[:1] != ["org_id"]
    ]

    assert len(tenant) > 20  # the check really read the schema
    assert offending == []


def test_every_tenant_table_has_an_org_id_column(db):
    tables = db.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
    ).fetchall()
    with_org = {
        r[0]
        for r in db.execute(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND column_name = 'org_id'"
        )
    }
    missing = sorted({t for (t,) in tables} - REFERENCE_TABLES - with_org)
    assert missing == []


def test_the_database_refuses_a_delivery_to_another_organizations_endpoint(db, make_org):
    a, b = make_org(name="A"), make_org(name="B")
    event = db.execute(
        "INSERT INTO outbox_events (org_id, event_id, type, payload) "
        "VALUES (%s, 'msg_x', 'appointment.booked', '{}') RETURNING id",
        (a.id,),
    ).fetchone()[0]
    endpoint = db.execute(
        "INSERT INTO webhook_endpoints (org_id, url, secret) "
        "VALUES (%s, 'https://b.example/hooks', 'whsec_x') RETURNING id",
        (b.id,),
    ).fetchone()[0]

    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        db.execute(
            "INSERT INTO webhook_deliveries (org_id, event_id, endpoint_id) VALUES (%s, %s, %s)",
            (a.id, event, endpoint),
        )
