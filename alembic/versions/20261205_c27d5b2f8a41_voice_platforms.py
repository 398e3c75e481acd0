"""Retell and ElevenLabs beside VAPI, and what each call reported afterwards (#27): the ledger
knows which platform a tool call came from, each organization's platform settings (sealed keys,
the VAPI assistant, whether recordings are kept), and one report per finished call.

Revision ID: c27d5b2f8a41
Revises: d28e6c3a9b52
Create Date: 2026-12-05 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c27d5b2f8a41"
down_revision: str | Sequence[str] | None = "d28e6c3a9b52"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every existing row came from VAPI, the only platform there was.
    op.add_column(
        "tool_calls", sa.Column("platform", sa.Text(), server_default="vapi", nullable=False)
    )
    op.create_table(
        "voice_platform_settings",
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("retell_api_key", sa.Text(), nullable=True),
        sa.Column("elevenlabs_webhook_secret", sa.Text(), nullable=True),
        sa.Column("vapi_assistant_id", sa.Text(), nullable=True),
        sa.Column("keep_recordings", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name="fk_voice_platform_settings_org_id_organizations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", name="pk_voice_platform_settings"),
    )
    op.create_table(
        "call_reports",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("platform", sa.Text(), nullable=False),
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_reason", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("structured_data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("recording_url", sa.Text(), nullable=True),
        sa.Column(
            "references",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name="fk_call_reports_org_id_organizations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_call_reports"),
        sa.UniqueConstraint(
            "org_id", "platform", "call_id", name="uq_call_reports_org_id_platform_call_id"
        ),
    )
    op.create_index("ix_call_reports_org_id_ended_at", "call_reports", ["org_id", "ended_at"])
    op.create_index(
        "ix_call_reports_references", "call_reports", ["references"], postgresql_using="gin"
    )


def downgrade() -> None:
    op.drop_index("ix_call_reports_references", table_name="call_reports")
    op.drop_index("ix_call_reports_org_id_ended_at", table_name="call_reports")
    op.drop_table("call_reports")
    op.drop_table("voice_platform_settings")
    op.drop_column("tool_calls", "platform")
