"""Secret rotation with a grace period: the previous secret keeps working until it expires.

Revision ID: 7c1e2f0a9b3d
Revises: 360a9e752b97
Create Date: 2026-11-25 18:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c1e2f0a9b3d"
down_revision: str | Sequence[str] | None = "360a9e752b97"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("organizations", sa.Column("previous_secret_hash", sa.Text(), nullable=True))
    op.add_column(
        "organizations",
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("organizations", "previous_secret_expires_at")
    op.drop_column("organizations", "previous_secret_hash")
