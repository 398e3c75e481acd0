"""Calendar sync: links to owners' CalDAV calendars, the busy times read from them, pushes
waiting for the worker, ICS feeds; appointments get a SEQUENCE and an "unconfirmed" mark.

Revision ID: b8e1c4d7a9f2
Revises: a7d2e9c4b6f8
Create Date: 2026-11-30 17:24:21.403698
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b8e1c4d7a9f2"
down_revision: str | Sequence[str] | None = "a7d2e9c4b6f8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calendar_feeds",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("resource_id", sa.BigInteger(), nullable=True),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "resource_id"],
            ["resources.org_id", "resources.id"],
            name="fk_calendar_feeds_org_id_resource_id_resources",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_calendar_feeds_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_feeds")),
        sa.UniqueConstraint("org_id", "token_hash", name="uq_calendar_feeds_org_id_token_hash"),
    )
    op.create_index(
        "uq_calendar_feeds_org_id_resource_id",
        "calendar_feeds",
        ["org_id", "resource_id"],
        unique=True,
        postgresql_where=sa.text("resource_id IS NOT NULL"),
    )
    op.create_index(
        "uq_calendar_feeds_org_id_whole",
        "calendar_feeds",
        ["org_id"],
        unique=True,
        postgresql_where=sa.text("resource_id IS NULL"),
    )
    op.create_table(
        "calendar_links",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("resource_id", sa.BigInteger(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("username", sa.Text(), nullable=True),
        sa.Column("password", sa.Text(), nullable=True),
        sa.Column("push", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("block", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "max_staleness_minutes", sa.Integer(), server_default=sa.text("15"), nullable=False
        ),
        sa.Column("when_stale", sa.Text(), server_default="refuse", nullable=False),
        sa.Column("last_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_good_sync_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "when_stale IN ('refuse', 'book')", name=op.f("ck_calendar_links_when_stale_known")
        ),
        sa.CheckConstraint(
            "max_staleness_minutes BETWEEN 1 AND 10080",
            name=op.f("ck_calendar_links_max_staleness_range"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "resource_id"],
            ["resources.org_id", "resources.id"],
            name="fk_calendar_links_org_id_resource_id_resources",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_calendar_links_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_links")),
        sa.UniqueConstraint("org_id", "id", name="uq_calendar_links_org_id_id"),
    )
    op.create_index(
        "ix_calendar_links_org_id_resource_id",
        "calendar_links",
        ["org_id", "resource_id"],
        unique=False,
    )
    op.create_table(
        "calendar_busy",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("link_id", sa.BigInteger(), nullable=False),
        sa.Column("resource_id", sa.BigInteger(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_calendar_busy_ends_after_starts")),
        sa.ForeignKeyConstraint(
            ["org_id", "link_id"],
            ["calendar_links.org_id", "calendar_links.id"],
            name="fk_calendar_busy_org_id_link_id_calendar_links",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_busy")),
    )
    op.create_index("ix_calendar_busy_link_id", "calendar_busy", ["link_id"], unique=False)
    op.create_index(
        "ix_calendar_busy_org_id_resource_id_starts_at",
        "calendar_busy",
        ["org_id", "resource_id", "starts_at"],
        unique=False,
    )
    op.create_table(
        "calendar_pushes",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("link_id", sa.BigInteger(), nullable=False),
        sa.Column("appointment_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'done')", name=op.f("ck_calendar_pushes_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "appointment_id"],
            ["appointments.org_id", "appointments.id"],
            name="fk_calendar_pushes_org_id_appointment_id_appointments",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "link_id"],
            ["calendar_links.org_id", "calendar_links.id"],
            name="fk_calendar_pushes_org_id_link_id_calendar_links",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_pushes")),
    )
    op.create_index(
        "ix_calendar_pushes_due",
        "calendar_pushes",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_calendar_pushes_link_id_appointment_id",
        "calendar_pushes",
        ["link_id", "appointment_id"],
        unique=False,
    )
    op.add_column(
        "appointments",
        sa.Column("sequence", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "appointments",
        sa.Column("unconfirmed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("appointments", "unconfirmed")
    op.drop_column("appointments", "sequence")
    op.drop_index("ix_calendar_pushes_link_id_appointment_id", table_name="calendar_pushes")
    op.drop_index(
        "ix_calendar_pushes_due",
        table_name="calendar_pushes",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_table("calendar_pushes")
    op.drop_index("ix_calendar_busy_org_id_resource_id_starts_at", table_name="calendar_busy")
    op.drop_index("ix_calendar_busy_link_id", table_name="calendar_busy")
    op.drop_table("calendar_busy")
    op.drop_index("ix_calendar_links_org_id_resource_id", table_name="calendar_links")
    op.drop_table("calendar_links")
    op.drop_index(
        "uq_calendar_feeds_org_id_whole",
        table_name="calendar_feeds",
        postgresql_where=sa.text("resource_id IS NULL"),
    )
    op.drop_index(
        "uq_calendar_feeds_org_id_resource_id",
        table_name="calendar_feeds",
        postgresql_where=sa.text("resource_id IS NOT NULL"),
    )
    op.drop_table("calendar_feeds")
