"""Two-way SMS (#29): an appointment the caller confirmed by reply, the answer given to each
inbound reply, the waitlist offer as a kind of message, and the waitlist itself (entries, the
times freed by cancellations and moves, and the offers texted of them).

Revision ID: e29f7d4bac63
Revises: b26c4a1e7f30
Create Date: 2026-12-05 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e29f7d4bac63"
down_revision: str | Sequence[str] | None = "b26c4a1e7f30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_KINDS = "kind IN ('confirmation', 'reminder', 'rescheduled', 'cancelled')"
_NEW_KINDS = "kind IN ('confirmation', 'reminder', 'rescheduled', 'cancelled', 'waitlist_offer')"


def upgrade() -> None:
    op.add_column(
        "appointments", sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("sms_inbound", sa.Column("answer", sa.Text(), nullable=True))
    op.drop_constraint(op.f("ck_notifications_kind_known"), "notifications", type_="check")
    op.create_check_constraint(op.f("ck_notifications_kind_known"), "notifications", _NEW_KINDS)

    op.create_table(
        "waitlist_entries",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("service", sa.Text(), nullable=True),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("part_of_day", sa.Text(), server_default="any", nullable=False),
        sa.Column("status", sa.Text(), server_default="waiting", nullable=False),
        sa.Column("appointment_id", sa.BigInteger(), nullable=True),
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
            "status IN ('waiting', 'offered', 'booked', 'expired')",
            name=op.f("ck_waitlist_entries_status_known"),
        ),
        sa.CheckConstraint(
            "part_of_day IN ('any', 'morning', 'afternoon', 'evening')",
            name=op.f("ck_waitlist_entries_part_known"),
        ),
        sa.CheckConstraint(
            "window_end > window_start", name=op.f("ck_waitlist_entries_window_ordered")
        ),
        sa.CheckConstraint(
            "duration_minutes BETWEEN 5 AND 1440", name=op.f("ck_waitlist_entries_duration_range")
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "contact_id"],
            ["contacts.org_id", "contacts.id"],
            name="fk_waitlist_entries_org_id_contact_id_contacts",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_waitlist_entries_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_entries")),
        sa.UniqueConstraint("org_id", "id", name="uq_waitlist_entries_org_id_id"),
    )
    op.create_index(
        "ix_waitlist_entries_waiting",
        "waitlist_entries",
        ["org_id", "id"],
        postgresql_where=sa.text("status IN ('waiting', 'offered')"),
    )
    op.create_index(
        "ix_waitlist_entries_org_id_contact_id", "waitlist_entries", ["org_id", "contact_id"]
    )
    op.create_table(
        "waitlist_openings",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("appointment_id", sa.BigInteger(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_waitlist_openings_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_openings")),
        sa.UniqueConstraint("org_id", "id", name="uq_waitlist_openings_org_id_id"),
    )
    op.create_index(
        "ix_waitlist_openings_open",
        "waitlist_openings",
        ["id"],
        postgresql_where=sa.text("done_at IS NULL"),
    )
    op.create_table(
        "waitlist_offers",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("opening_id", sa.BigInteger(), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("offered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text(), server_default="open", nullable=False),
        sa.Column("appointment_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'taken', 'lapsed', 'gone')",
            name=op.f("ck_waitlist_offers_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "entry_id"],
            ["waitlist_entries.org_id", "waitlist_entries.id"],
            name="fk_waitlist_offers_org_id_entry_id_waitlist_entries",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "opening_id"],
            ["waitlist_openings.org_id", "waitlist_openings.id"],
            name="fk_waitlist_offers_org_id_opening_id_waitlist_openings",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_waitlist_offers_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_offers")),
        sa.UniqueConstraint(
            "org_id",
            "opening_id",
            "entry_id",
            name="uq_waitlist_offers_org_id_opening_id_entry_id",
        ),
    )
    op.create_index("ix_waitlist_offers_entry_id", "waitlist_offers", ["entry_id"])


def downgrade() -> None:
    op.drop_index("ix_waitlist_offers_entry_id", table_name="waitlist_offers")
    op.drop_table("waitlist_offers")
    op.drop_index("ix_waitlist_openings_open", table_name="waitlist_openings")
    op.drop_table("waitlist_openings")
    op.drop_index("ix_waitlist_entries_org_id_contact_id", table_name="waitlist_entries")
    op.drop_index("ix_waitlist_entries_waiting", table_name="waitlist_entries")
    op.drop_table("waitlist_entries")
    op.execute("DELETE FROM notifications WHERE kind = 'waitlist_offer'")
    op.drop_constraint(op.f("ck_notifications_kind_known"), "notifications", type_="check")
    op.create_check_constraint(op.f("ck_notifications_kind_known"), "notifications", _OLD_KINDS)
    op.drop_column("sms_inbound", "answer")
    op.drop_column("appointments", "confirmed_at")
