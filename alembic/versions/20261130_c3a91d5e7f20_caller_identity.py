"""Caller identity: per-appointment name and email, a per-caller cap, a ledger bound to its caller.

- appointments.name / appointments.email: what a booking was made under, so a booking for
  somebody else's number never renames their contact, and "the email it was booked with" is a
  fact of the appointment. Existing appointments take their contact's current name, and the
  email only of an email-only contact.
- Free text in appointments.service (an organization without a catalogue) moves to notes:
  notes are never returned by a tool, so what one caller typed cannot be read to another.
- organizations.max_upcoming_per_caller (default 4).
- tool_calls.caller and tool_calls.limit_key: a stored answer goes back only to the call and
  caller that produced it, and the change limit also counts requests without a VAPI call id.
- ix_contacts_org_id_email goes: contacts are no longer looked up by email among contacts that
  have a phone (an email is a claim), and phone-less lookups use the partial unique index.

Revision ID: c3a91d5e7f20
Revises: b5e8c3d1f2a7
Create Date: 2026-11-30 12:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c3a91d5e7f20"
down_revision: str | Sequence[str] | None = "b5e8c3d1f2a7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "organizations",
        sa.Column("max_upcoming_per_caller", sa.Integer(), server_default="4", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_organizations_max_upcoming_per_caller_range"),
        "organizations",
        "max_upcoming_per_caller BETWEEN 1 AND 100",
    )

    op.add_column("appointments", sa.Column("name", sa.Text(), nullable=True))
    op.add_column("appointments", sa.Column("email", sa.Text(), nullable=True))
    # Only an email-only contact's email is known to be what its bookings were made with (it
    # is the contact's key). A phone contact's email was last-writer-wins until now, possibly
    # written by somebody else, so it does not become proof; those bookings keep phone proof.
    op.execute(
        """
        UPDATE appointments a
        SET name = left(c.name, 80), email = CASE WHEN c.phone IS NULL THEN c.email END
        FROM contacts c
        WHERE c.org_id = a.org_id AND c.id = a.contact_id
        """
    )
    op.execute(
        """
        UPDATE appointments a
        SET notes = concat_ws(E'\\n', 'Service asked for: ' || a.service, a.notes),
            service = NULL
        WHERE a.service IS NOT NULL
          AND NOT EXISTS (
              SELECT 1 FROM services s WHERE s.org_id = a.org_id AND s.name = a.service
          )
        """
    )

    op.add_column("tool_calls", sa.Column("caller", sa.Text(), nullable=True))
    op.add_column("tool_calls", sa.Column("limit_key", sa.Text(), nullable=True))
    op.execute(
        """
        UPDATE tool_calls
        SET limit_key = CASE WHEN vapi_call_id IS NOT NULL THEN 'call:' || vapi_call_id
                             ELSE 'request:ledger-' || id END
        """
    )
    op.alter_column("tool_calls", "limit_key", nullable=False)
    op.drop_index("ix_tool_calls_org_id_vapi_call_id", table_name="tool_calls")
    op.create_index(
        op.f("ix_tool_calls_org_id_limit_key"), "tool_calls", ["org_id", "limit_key"], unique=False
    )
    op.drop_index("ix_contacts_org_id_email", table_name="contacts")


def downgrade() -> None:
    op.create_index("ix_contacts_org_id_email", "contacts", ["org_id", "email"], unique=False)
    op.drop_index(op.f("ix_tool_calls_org_id_limit_key"), table_name="tool_calls")
    op.create_index(
        "ix_tool_calls_org_id_vapi_call_id", "tool_calls", ["org_id", "vapi_call_id"], unique=False
    )
    op.drop_column("tool_calls", "limit_key")
    op.drop_column("tool_calls", "caller")
    # Notes that came from free-text services stay notes: the split cannot be undone exactly.
    op.drop_column("appointments", "email")
    op.drop_column("appointments", "name")
    op.drop_constraint(
        op.f("ck_organizations_max_upcoming_per_caller_range"), "organizations", type_="check"
    )
    op.drop_column("organizations", "max_upcoming_per_caller")
