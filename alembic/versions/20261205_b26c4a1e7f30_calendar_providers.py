"""Calendars a business already uses (#26): a link names its provider (caldav, google,
microsoft, ics) with the account, calendar id, a "reconnect needed" flag and the adapter's sync
state; the ids Microsoft Graph gives our events; OAuth connections under way.

Revision ID: b26c4a1e7f30
Revises: d9f3b6a1c2e4
Create Date: 2026-12-05 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "b26c4a1e7f30"
down_revision: str | Sequence[str] | None = "d9f3b6a1c2e4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A connection under way names the user who started it together with the organization.
    op.create_unique_constraint("uq_users_org_id_id", "users", ["org_id", "id"])
    op.add_column(
        "calendar_links",
        sa.Column("provider", sa.Text(), server_default="caldav", nullable=False),
    )
    op.add_column("calendar_links", sa.Column("account", sa.Text(), nullable=True))
    op.add_column("calendar_links", sa.Column("calendar_id", sa.Text(), nullable=True))
    op.add_column(
        "calendar_links",
        sa.Column(
            "reconnect_needed", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
    )
    op.add_column("calendar_links", sa.Column("sync_state", sa.Text(), nullable=True))
    op.create_check_constraint(
        op.f("ck_calendar_links_provider_known"),
        "calendar_links",
        "provider IN ('caldav', 'google', 'microsoft', 'ics')",
    )
    op.create_check_constraint(
        op.f("ck_calendar_links_ics_never_pushes"),
        "calendar_links",
        "provider <> 'ics' OR NOT push",
    )
    op.create_table(
        "calendar_remote_events",
        sa.Column("link_id", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.Text(), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("remote_id", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id", "link_id"],
            ["calendar_links.org_id", "calendar_links.id"],
            name="fk_calendar_remote_events_org_id_link_id_calendar_links",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("link_id", "uid", name=op.f("pk_calendar_remote_events")),
    )
    op.create_table(
        "calendar_connect_states",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("resource_id", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("state_hash", sa.Text(), nullable=False),
        sa.Column("code_verifier", sa.Text(), nullable=False),
        sa.Column("options", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "provider IN ('google', 'microsoft')",
            name=op.f("ck_calendar_connect_states_provider_oauth"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "resource_id"],
            ["resources.org_id", "resources.id"],
            name="fk_calendar_connect_states_org_id_resource_id_resources",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_calendar_connect_states_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "user_id"],
            ["users.org_id", "users.id"],
            name="fk_calendar_connect_states_org_id_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_connect_states")),
        sa.UniqueConstraint(
            "org_id", "state_hash", name="uq_calendar_connect_states_org_id_state_hash"
        ),
    )
    op.create_index(
        "ix_calendar_connect_states_state_hash", "calendar_connect_states", ["state_hash"]
    )


def downgrade() -> None:
    op.drop_table("calendar_connect_states")
    op.drop_table("calendar_remote_events")
    op.drop_constraint(op.f("ck_calendar_links_ics_never_pushes"), "calendar_links")
    op.drop_constraint(op.f("ck_calendar_links_provider_known"), "calendar_links")
    for column in ("sync_state", "reconnect_needed", "calendar_id", "account", "provider"):
        op.drop_column("calendar_links", column)
    op.drop_constraint("uq_users_org_id_id", "users", type_="unique")
