"""Working hours and exceptions change the organization's version too: a worker may then keep
an organization's opening hours with its catalogue (org_cache.py) and book an open day without
reading them (use_cases/openings.cached_openings).

Revision ID: c4e8f1a2d7b9
Revises: a7d2e9c4b1f6
Create Date: 2026-12-01 03:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c4e8f1a2d7b9"
down_revision: str | Sequence[str] | None = "a7d2e9c4b1f6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # touch_organization_config() comes from a7d2e9c4b1f6: it re-saves the organizations
    # touched, and their BEFORE UPDATE trigger hands out the new version.
    for table in ("working_hours", "schedule_exceptions"):
        op.execute(
            f"""
            CREATE TRIGGER trg_{table}_organization_config
            AFTER INSERT OR UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION touch_organization_config()
            """
        )


def downgrade() -> None:
    for table in ("working_hours", "schedule_exceptions"):
        op.execute(f"DROP TRIGGER trg_{table}_organization_config ON {table}")
