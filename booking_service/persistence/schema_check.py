"""Does the live database have what the code relies on?

The original incident was an ON CONFLICT aimed at a constraint that did not exist. This check
asserts the migrations are at head and that every named constraint and index the code uses is
present, with the columns it expects, and the triggers the organization cache relies on. Used
by `flask schema check`, /api/health and `make run`.
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from booking_service.persistence import models

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# name -> (table, kind, columns, partial-index predicate). kind: u unique constraint,
# c check, f foreign key, x exclusion constraint, i unique index (not backing a constraint).
REQUIRED: dict[str, tuple[str, str, tuple[str, ...], str | None]] = {
    models.UQ_CONTACTS_ORG_PHONE: ("contacts", "u", ("org_id", "phone"), None),
    models.UQ_CONTACTS_ORG_ID: ("contacts", "u", ("org_id", "id"), None),
    models.CK_CONTACTS_PHONE_OR_EMAIL: ("contacts", "c", (), None),
    # Without its WHERE clause this index would refuse two phone contacts sharing an email.
    models.UQ_CONTACTS_ORG_EMAIL_PHONELESS: (
        "contacts",
        "i",
        ("org_id", "email"),
        "(phone IS NULL)",
    ),
    models.UQ_APPOINTMENTS_ORG_REFERENCE: ("appointments", "u", ("org_id", "reference"), None),
    "fk_appointments_org_id_contact_id_contacts": (
        "appointments",
        "f",
        ("org_id", "contact_id"),
        None,
    ),
    "fk_appointments_org_id_resource_id_resources": (
        "appointments",
        "f",
        ("org_id", "resource_id"),
        None,
    ),
    models.EX_APPOINTMENTS_NO_OVERLAP: ("appointments", "x", (), None),
    models.UQ_TOOL_CALLS_ORG_TOOL_CALL: ("tool_calls", "u", ("org_id", "tool_call_id"), None),
    models.UQ_API_REQUESTS_KEY_IDEMPOTENCY: (
        "api_requests",
        "u",
        ("org_id", "api_key_id", "idempotency_key"),
        None,
    ),
    models.UQ_CALL_REPORTS_ORG_PLATFORM_CALL: (
        "call_reports",
        "u",
        ("org_id", "platform", "call_id"),
        None,
    ),
    models.UQ_RESOURCES_ORG_ID: ("resources", "u", ("org_id", "id"), None),
    models.UQ_RESOURCES_ORG_NAME: ("resources", "u", ("org_id", "name_key"), None),
    models.UQ_SERVICES_ORG_NAME: ("services", "u", ("org_id", "name_key"), None),
}

# The organization cache (org_cache.py) is right only while every change to an organization,
# its resources, services or opening hours gives it a new config_version: these triggers do
# that.
REQUIRED_TRIGGERS: dict[str, str] = {
    "trg_organizations_config_version": "organizations",
    "trg_resources_organization_config": "resources",
    "trg_services_organization_config": "services",
    "trg_working_hours_organization_config": "working_hours",
    "trg_schedule_exceptions_organization_config": "schedule_exceptions",
}

_TRIGGERS_SQL = text(
    """
    SELECT t.tgname AS name, rel.relname AS tbl
    FROM pg_trigger t
    JOIN pg_class rel ON rel.oid = t.tgrelid
    JOIN pg_namespace nsp ON nsp.oid = rel.relnamespace
    WHERE nsp.nspname = current_schema() AND NOT t.tgisinternal AND t.tgenabled <> 'D'
    """
)

_CONSTRAINTS_SQL = text(
    """
    SELECT con.conname AS name, rel.relname AS tbl, con.contype AS kind,
           ARRAY(SELECT att.attname FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
                 JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = k.attnum
                 ORDER BY k.ord)::text[] AS columns,
           NULL::text AS predicate
    FROM pg_constraint con
    JOIN pg_class rel ON rel.oid = con.conrelid
    JOIN pg_namespace nsp ON nsp.oid = rel.relnamespace
    WHERE nsp.nspname = current_schema()
    UNION ALL
    SELECT idx.relname, rel.relname, 'i',
           ARRAY(SELECT att.attname FROM unnest(ix.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
                 JOIN pg_attribute att ON att.attrelid = ix.indrelid AND att.attnum = k.attnum
                 ORDER BY k.ord)::text[],
           pg_get_expr(ix.indpred, ix.indrelid)
    FROM pg_index ix
    JOIN pg_class idx ON idx.oid = ix.indexrelid
    JOIN pg_class rel ON rel.oid = ix.indrelid
    JOIN pg_namespace nsp ON nsp.oid = rel.relnamespace
    WHERE nsp.nspname = current_schema() AND ix.indisunique AND ix.indisvalid
      -- indexes that back a constraint are reported as that constraint above
      AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = ix.indexrelid)
    """
)


def alembic_config(database_url: str | None = None) -> Config:
    """The project's alembic configuration, optionally pointed at a database URL."""
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    if database_url:
        cfg.attributes["database_url"] = database_url
    return cfg


def head_revision() -> str:
    """The newest migration revision in the code (read from files; no database)."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"expected one alembic head, found {heads}")
    return heads[0]


def check_schema(connection: Connection, expected_head: str) -> list[str]:
    """Return human-readable problems; an empty list means the schema is what the code needs."""
    problems: list[str] = []
    has_version_table = connection.execute(
        text("SELECT to_regclass('alembic_version') IS NOT NULL")
    ).scalar()
    current = (
        connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        if has_version_table
        else []
    )
    if current != [expected_head]:
        versions = ", ".join(current) or "none"
        problems.append(
            f"migrations are not at head (database: {versions}; code: {expected_head}); "
            "run `alembic upgrade head`"
        )
    present = {
        row.name: (row.tbl, row.kind, tuple(row.columns), row.predicate)
        for row in connection.execute(_CONSTRAINTS_SQL)
    }
    for name, (table, kind, columns, predicate) in REQUIRED.items():
        found = present.get(name)
        if found is None:
            problems.append(f"missing {_KIND_WORDS[kind]} {name} on {table}")
        elif (
            found[0] != table
            or found[1] != kind
            or (columns and found[2] != columns)
            or found[3] != predicate
        ):
            where = f" WHERE {predicate}" if predicate else ""
            problems.append(
                f"{name} exists but is not the expected {_KIND_WORDS[kind]} on "
                f"{table}({', '.join(columns)}){where}"
            )
    triggers = {row.name: row.tbl for row in connection.execute(_TRIGGERS_SQL)}
    for name, table in REQUIRED_TRIGGERS.items():
        if triggers.get(name) != table:
            problems.append(f"missing or disabled trigger {name} on {table}")
    return problems


_KIND_WORDS = {
    "u": "unique constraint",
    "c": "check constraint",
    "f": "foreign key",
    "i": "unique index",
    "x": "exclusion constraint",
}
