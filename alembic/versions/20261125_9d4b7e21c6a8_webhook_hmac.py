"""Optional HMAC verification of webhook requests per organization, with replay protection.

Revision ID: 9d4b7e21c6a8
Revises: 7c1e2f0a9b3d
Create Date: 2026-11-25 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9d4b7e21c6a8"
down_revision: str | Sequence[str] | None = "7c1e2f0a9b3d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("organizations", sa.Column("hmac_secret", sa.Text(), nullable=True))
    op.create_table(
        "webhook_signatures",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column(
            "seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_webhook_signatures_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_signatures")),
        sa.UniqueConstraint("org_id", "signature", name="uq_webhook_signatures_org_id_signature"),
    )
    op.create_index(
        "ix_webhook_signatures_seen_at", "webhook_signatures", ["seen_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_signatures_seen_at", table_name="webhook_signatures")
    op.drop_table("webhook_signatures")
    op.drop_column("organizations", "hmac_secret")
