"""Signed requests remember their answer: a repeat (nginx's retry) gets it instead of 401.

Revision ID: f5c8d3e1a2b4
Revises: e4b7a2c9d1f3
Create Date: 2026-11-30 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "f5c8d3e1a2b4"
down_revision: str | Sequence[str] | None = "e4b7a2c9d1f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "webhook_signatures",
        sa.Column("attempts", sa.SmallInteger(), server_default=sa.text("1"), nullable=False),
    )
    op.add_column(
        "webhook_signatures",
        sa.Column("answer", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("webhook_signatures", "answer")
    op.drop_column("webhook_signatures", "attempts")
