"""One tenant must not stall, starve or flood what all share (#24): sending budgets and the
unverified-booking limit per organization, backoff for failing calendar links, a circuit
breaker per webhook endpoint, sign-in locks per email and source, per-organization counters,
and inbound SMS remembered by MessageSid.

Revision ID: d9f3b6a1c2e4
Revises: c4e8f1a2d7b9
Create Date: 2026-12-05 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d9f3b6a1c2e4"
down_revision: str | Sequence[str] | None = "c4e8f1a2d7b9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BUDGETS = (
    ("sms_per_day", "200"),
    ("email_per_day", "500"),
    ("unverified_bookings_per_day", "20"),
)


def upgrade() -> None:
    for column, default in _BUDGETS:
        op.add_column(
            "organizations",
            sa.Column(column, sa.Integer(), server_default=sa.text(default), nullable=False),
        )
        op.create_check_constraint(
            op.f(f"ck_organizations_{column}_range"),
            "organizations",
            f"{column} BETWEEN 0 AND 100000",
        )

    op.add_column(
        "calendar_links",
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "calendar_links", sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "webhook_endpoints",
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "webhook_endpoints",
        sa.Column("circuit_open_until", sa.DateTime(timezone=True), nullable=True),
    )

    op.add_column(
        "sign_in_throttles", sa.Column("source", sa.Text(), server_default="", nullable=False)
    )
    op.drop_constraint("pk_sign_in_throttles", "sign_in_throttles", type_="primary")
    op.create_primary_key("pk_sign_in_throttles", "sign_in_throttles", ["email", "source"])

    op.create_table(
        "org_counters",
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name="fk_org_counters_org_id_organizations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", "action", name="pk_org_counters"),
    )
    op.create_table(
        "sms_inbound",
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("message_sid", sa.Text(), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name="fk_sms_inbound_org_id_organizations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", "message_sid", name="pk_sms_inbound"),
    )
    op.create_index("ix_sms_inbound_received_at", "sms_inbound", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_sms_inbound_received_at", table_name="sms_inbound")
    op.drop_table("sms_inbound")
    op.drop_table("org_counters")
    op.execute("DELETE FROM sign_in_throttles WHERE source <> ''")
    op.drop_constraint("pk_sign_in_throttles", "sign_in_throttles", type_="primary")
    op.create_primary_key("pk_sign_in_throttles", "sign_in_throttles", ["email"])
    op.drop_column("sign_in_throttles", "source")
    op.drop_column("webhook_endpoints", "circuit_open_until")
    op.drop_column("webhook_endpoints", "consecutive_failures")
    op.drop_column("calendar_links", "next_poll_at")
    op.drop_column("calendar_links", "consecutive_failures")
    for column, _ in reversed(_BUDGETS):
        op.drop_constraint(op.f(f"ck_organizations_{column}_range"), "organizations", type_="check")
        op.drop_column("organizations", column)
