"""Core schema: organizations, contacts, appointments and the tool-call ledger.

uq_contacts_org_phone is a real UNIQUE table constraint (not just an index) so that
ON CONFLICT ON CONSTRAINT can name it; phone-less contacts are unique by email through a
partial unique index; appointments reference contacts by (org_id, id) so no appointment can
point at another organization's contact.

Revision ID: 25f754c330ec
Revises:
Create Date: 2026-11-25 17:28:58.437332
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "25f754c330ec"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("phone_region", sa.String(length=2), server_default="US", nullable=False),
        sa.Column("appointment_minutes", sa.Integer(), server_default="30", nullable=False),
        sa.Column("secret_hash", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "phone_region ~ '^[A-Z]{2}$'", name=op.f("ck_organizations_phone_region_format")
        ),
        sa.CheckConstraint(
            "appointment_minutes BETWEEN 5 AND 480",
            name=op.f("ck_organizations_appointment_minutes_range"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
    )
    op.create_table(
        "contacts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "phone IS NOT NULL OR email IS NOT NULL", name=op.f("ck_contacts_phone_or_email")
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_contacts_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint("org_id", "id", name="uq_contacts_org_id_id"),
        sa.UniqueConstraint("org_id", "phone", name="uq_contacts_org_phone"),
    )
    op.create_index("ix_contacts_org_id_email", "contacts", ["org_id", "email"], unique=False)
    op.create_index(
        "uq_contacts_org_email_phoneless",
        "contacts",
        ["org_id", "email"],
        unique=True,
        postgresql_where=sa.text("phone IS NULL"),
    )
    op.create_table(
        "tool_calls",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("tool_call_id", sa.Text(), nullable=False),
        sa.Column("vapi_call_id", sa.Text(), nullable=True),
        sa.Column("tool_name", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("answer", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_tool_calls_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tool_calls")),
        sa.UniqueConstraint("org_id", "tool_call_id", name="uq_tool_calls_org_id_tool_call_id"),
    )
    op.create_table(
        "appointments",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text(), server_default="booked", nullable=False),
        sa.Column("service", sa.Text(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("vapi_call_id", sa.Text(), nullable=True),
        sa.Column("tool_call_id", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('booked', 'cancelled')", name=op.f("ck_appointments_status_known")
        ),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_appointments_ends_after_starts")),
        sa.ForeignKeyConstraint(
            ["org_id", "contact_id"],
            ["contacts.org_id", "contacts.id"],
            name="fk_appointments_org_id_contact_id_contacts",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_appointments_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointments")),
        sa.UniqueConstraint("org_id", "reference", name="uq_appointments_org_id_reference"),
    )
    op.create_index(
        "ix_appointments_org_id_contact_id", "appointments", ["org_id", "contact_id"], unique=False
    )
    op.create_index(
        "ix_appointments_org_id_starts_at", "appointments", ["org_id", "starts_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_appointments_org_id_starts_at", table_name="appointments")
    op.drop_index("ix_appointments_org_id_contact_id", table_name="appointments")
    op.drop_table("appointments")
    op.drop_table("tool_calls")
    op.drop_index(
        "uq_contacts_org_email_phoneless",
        table_name="contacts",
        postgresql_where=sa.text("phone IS NULL"),
    )
    op.drop_index("ix_contacts_org_id_email", table_name="contacts")
    op.drop_table("contacts")
    op.drop_table("organizations")
