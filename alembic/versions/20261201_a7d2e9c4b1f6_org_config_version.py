"""Organization config versions: what a worker may cache of an organization (its row, its
resources and services) is valid while this version is unchanged.

Every change bumps it, whoever makes it (CLI, web page, a hand-written UPDATE), because
triggers do it in the changing transaction: a BEFORE UPDATE trigger on organizations, and
row triggers on resources and services that touch their organization. Versions come from one
sequence owned by no column, so they are never reused: not by another organization, and not
after a TRUNCATE ... RESTART IDENTITY (tests) brings an organization id back.

Revision ID: a7d2e9c4b1f6
Revises: 1797ed817cd8
Create Date: 2026-12-01 00:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7d2e9c4b1f6"
down_revision: str | Sequence[str] | None = "1797ed817cd8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE organization_config_versions")
    op.add_column(
        "organizations",
        sa.Column(
            "config_version",
            sa.BigInteger(),
            server_default=sa.text("nextval('organization_config_versions')"),
            nullable=False,
        ),
    )
    op.execute(
        """
        CREATE FUNCTION bump_organization_config_version() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            NEW.config_version := nextval('organization_config_versions');
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER trg_organizations_config_version
        BEFORE UPDATE ON organizations
        FOR EACH ROW EXECUTE FUNCTION bump_organization_config_version()
        """
    )
    # The UPDATE below changes nothing itself: the BEFORE UPDATE trigger above gives the
    # organization its new version.
    op.execute(
        """
        CREATE FUNCTION touch_organization_config() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('UPDATE', 'DELETE') THEN
                UPDATE organizations SET config_version = config_version WHERE id = OLD.org_id;
            END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                UPDATE organizations SET config_version = config_version WHERE id = NEW.org_id;
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    for table in ("resources", "services"):
        op.execute(
            f"""
            CREATE TRIGGER trg_{table}_organization_config
            AFTER INSERT OR UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION touch_organization_config()
            """
        )


def downgrade() -> None:
    for table in ("resources", "services"):
        op.execute(f"DROP TRIGGER trg_{table}_organization_config ON {table}")
    op.execute("DROP FUNCTION touch_organization_config()")
    op.execute("DROP TRIGGER trg_organizations_config_version ON organizations")
    op.execute("DROP FUNCTION bump_organization_config_version()")
    op.drop_column("organizations", "config_version")
    op.execute("DROP SEQUENCE organization_config_versions")
