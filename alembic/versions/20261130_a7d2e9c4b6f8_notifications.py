"""Confirmations and reminders: messaging settings, notifications, SMS opt-outs; no-shows.

Revision ID: a7d2e9c4b6f8
Revises: f5c8d3e1a2b4
Create Date: 2026-11-30 15:47:11.837019
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "a7d2e9c4b6f8"
down_revision: str | Sequence[str] | None = "f5c8d3e1a2b4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _status_check(statuses: str) -> None:
    op.execute(
        "ALTER TABLE appointments DROP CONSTRAINT ck_appointments_status_known, "
        f"ADD CONSTRAINT ck_appointments_status_known CHECK (status IN ({statuses}))"
    )


_EXCLUSION = (
    "ALTER TABLE appointments DROP CONSTRAINT ex_appointments_no_overlap, "
    "ADD CONSTRAINT ex_appointments_no_overlap EXCLUDE USING gist "
    "(org_id WITH =, resource_id WITH =, tstzrange(starts_at, blocked_until, '[)') WITH &&) "
    "WHERE ({where})"
)


def upgrade() -> None:
    # A completed or missed appointment keeps its chair until its end, like a booked one.
    op.execute(_EXCLUSION.format(where="status <> 'cancelled'"))
    # The notifications' composite foreign key needs this first.
    op.create_unique_constraint("uq_appointments_org_id_id", "appointments", ["org_id", "id"])
    _status_check("'booked', 'cancelled', 'completed', 'no_show'")
    op.create_table(
        "messaging_settings",
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("sms_enabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("twilio_account_sid", sa.Text(), nullable=True),
        sa.Column("twilio_auth_token", sa.Text(), nullable=True),
        sa.Column("sms_from", sa.Text(), nullable=True),
        sa.Column("messaging_service_sid", sa.Text(), nullable=True),
        sa.Column("sms_countries", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("email_enabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("email_from", sa.Text(), nullable=True),
        sa.Column("email_reply_to", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_messaging_settings_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_messaging_settings")),
    )
    op.create_table(
        "sms_opt_outs",
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("phone", sa.Text(), nullable=False),
        sa.Column(
            "opted_out_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("source", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_sms_opt_outs_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", "phone", name=op.f("pk_sms_opt_outs")),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("appointment_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("to_address", sa.Text(), nullable=False),
        sa.Column("offset_minutes", sa.Integer(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("provider_id", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "channel IN ('sms', 'email')", name=op.f("ck_notifications_channel_known")
        ),
        sa.CheckConstraint(
            "kind IN ('confirmation', 'reminder', 'rescheduled', 'cancelled')",
            name=op.f("ck_notifications_kind_known"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'skipped', 'failed', 'opted_out')",
            name=op.f("ck_notifications_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "appointment_id"],
            ["appointments.org_id", "appointments.id"],
            name="fk_notifications_org_id_appointment_id_appointments",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    op.create_index(
        "ix_notifications_due",
        "notifications",
        ["due_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_notifications_org_id_appointment_id",
        "notifications",
        ["org_id", "appointment_id"],
        unique=False,
    )
    op.create_index(
        "ix_notifications_org_id_to_address_sent_at",
        "notifications",
        ["org_id", "to_address", "sent_at"],
        unique=False,
    )
    op.create_index(
        "ix_notifications_sending",
        "notifications",
        ["attempted_at"],
        unique=False,
        postgresql_where=sa.text("status = 'sending'"),
    )
    op.add_column(
        "organizations",
        sa.Column(
            "reminder_minutes",
            postgresql.ARRAY(sa.Integer()),
            server_default=sa.text("'{1440,120}'"),
            nullable=False,
        ),
    )
    op.add_column("organizations", sa.Column("quiet_from", sa.Time(), nullable=True))
    op.add_column("organizations", sa.Column("quiet_until", sa.Time(), nullable=True))


def downgrade() -> None:
    # Marked outcomes go back to what the older code knows: the appointment took place.
    op.execute("UPDATE appointments SET status = 'booked' WHERE status IN ('completed', 'no_show')")
    op.drop_column("organizations", "quiet_until")
    op.drop_column("organizations", "quiet_from")
    op.drop_column("organizations", "reminder_minutes")
    op.drop_index(
        "ix_notifications_sending",
        table_name="notifications",
        postgresql_where=sa.text("status = 'sending'"),
    )
    op.drop_index("ix_notifications_org_id_to_address_sent_at", table_name="notifications")
    op.drop_index("ix_notifications_org_id_appointment_id", table_name="notifications")
    op.drop_index(
        "ix_notifications_due",
        table_name="notifications",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_table("notifications")
    op.drop_table("sms_opt_outs")
    op.drop_table("messaging_settings")
    _status_check("'booked', 'cancelled'")
    op.execute(_EXCLUSION.format(where="status = 'booked'"))
    op.drop_constraint("uq_appointments_org_id_id", "appointments", type_="unique")
