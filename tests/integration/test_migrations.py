"""Migrations: up from empty, down to base, up again; no drift; a missing constraint is loud."""

from __future__ import annotations

import json

from alembic import command

from booking_service.schema_check import alembic_config, head_revision
from tests.conftest import make_app


def _cfg(url: str):
    cfg = alembic_config(url)
    cfg.attributes["skip_logging_config"] = True
    return cfg


def _tables(conn) -> set[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    ).fetchall()
    return {r[0] for r in rows}


def test_upgrade_from_empty_downgrade_to_base_and_upgrade_again(blank_url, blank_db):
    cfg = _cfg(blank_url)

    command.upgrade(cfg, "head")
    assert {"organizations", "contacts", "appointments", "tool_calls"} <= _tables(blank_db)

    command.downgrade(cfg, "base")
    assert _tables(blank_db) <= {"alembic_version"}

    command.upgrade(cfg, "head")
    version = blank_db.execute("SELECT version_num FROM alembic_version").fetchall()
    assert version == [(head_revision(),)]
    command.check(cfg)  # raises when models and migrations drift apart


def test_uq_contacts_org_phone_is_a_real_named_constraint(db):
    row = db.execute(
        "SELECT contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conname = 'uq_contacts_org_phone'"
    ).fetchone()

    assert row == ("u", "UNIQUE (org_id, phone)")


def schema_check(url: str):
    """Run `flask schema check` (and GET /api/health) against `url`."""
    app = make_app(url)
    try:
        result = app.test_cli_runner().invoke(args=["schema", "check"])
        health = app.test_client().get("/api/health")
    finally:
        app.extensions["booking_service"].engine.dispose()
    return result, health


def test_schema_check_and_health_fail_clearly_without_uq_contacts_org_phone(database_url, db):
    db.execute("ALTER TABLE contacts DROP CONSTRAINT uq_contacts_org_phone")
    result, health = schema_check(database_url)

    assert result.exit_code == 1
    report = json.loads(result.stderr)
    assert report["status"] == "failed"
    assert any("uq_contacts_org_phone" in p for p in report["problems"])
    assert health.status_code == 503
    assert health.get_json() == {"status": "unavailable", "database": "ok", "schema": "outdated"}


def test_a_unique_index_in_place_of_the_constraint_is_reported(database_url, db):
    db.execute("ALTER TABLE contacts DROP CONSTRAINT uq_contacts_org_phone")
    db.execute("CREATE UNIQUE INDEX uq_contacts_org_phone ON contacts (org_id, phone)")
    result, _ = schema_check(database_url)

    assert result.exit_code == 1
    assert "uq_contacts_org_phone exists but is not the expected unique constraint" in result.stderr


def test_schema_check_reports_migrations_behind_head(blank_url):
    result, health = schema_check(blank_url)

    assert result.exit_code == 1
    assert "migrations are not at head" in result.stderr
    assert "missing unique constraint uq_contacts_org_phone" in result.stderr
    assert health.status_code == 503
