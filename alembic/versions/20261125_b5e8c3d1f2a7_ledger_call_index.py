"""Index the ledger by VAPI call: the per-call change limit counts a call's rows on every
booking, which was a sequential scan of the whole ledger (found by `make bench`).

Revision ID: b5e8c3d1f2a7
Revises: 9d4b7e21c6a8
Create Date: 2026-11-25 19:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b5e8c3d1f2a7"
down_revision: str | Sequence[str] | None = "9d4b7e21c6a8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_tool_calls_org_id_vapi_call_id", "tool_calls", ["org_id", "vapi_call_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_tool_calls_org_id_vapi_call_id", table_name="tool_calls")
