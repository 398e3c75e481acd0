"""Scheduling: resources with working hours and exceptions, services, booking rules, and the
exclusion constraint that makes a double booking impossible.

Existing organizations get a default resource open Monday-Friday 09:00-17:00 and their
existing appointments are assigned to it. The exclusion constraint is added last; if booked
appointments already overlap, the upgrade stops with a message naming how many, rather than
cancelling anybody's booking behind their back.

Revision ID: 360a9e752b97
Revises: 25f754c330ec
Create Date: 2026-11-25 17:40:32.612362
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "360a9e752b97"
down_revision: str | Sequence[str] | None = "25f754c330ec"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # btree_gist lets one GiST index combine "=" on ids with "&&" on time ranges (a trusted
    # extension: the database owner may create it).
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")

    op.add_column(
        "organizations",
        sa.Column("slot_minutes", sa.Integer(), server_default="15", nullable=False),
    )
    op.add_column(
        "organizations",
        sa.Column("min_notice_minutes", sa.Integer(), server_default="60", nullable=False),
    )
    op.add_column(
        "organizations",
        sa.Column("horizon_days", sa.Integer(), server_default="60", nullable=False),
    )
    op.add_column(
        "organizations",
        sa.Column("buffer_minutes", sa.Integer(), server_default="0", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_organizations_slot_minutes_range"),
        "organizations",
        "slot_minutes BETWEEN 5 AND 240",
    )
    op.create_check_constraint(
        op.f("ck_organizations_min_notice_range"),
        "organizations",
        "min_notice_minutes BETWEEN 0 AND 43200",
    )
    op.create_check_constraint(
        op.f("ck_organizations_horizon_days_range"),
        "organizations",
        "horizon_days BETWEEN 1 AND 730",
    )
    op.create_check_constraint(
        op.f("ck_organizations_buffer_minutes_range"),
        "organizations",
        "buffer_minutes BETWEEN 0 AND 240",
    )

    op.create_table(
        "resources",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("name_key", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_resources_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resources")),
        sa.UniqueConstraint("org_id", "id", name="uq_resources_org_id_id"),
        sa.UniqueConstraint("org_id", "name_key", name="uq_resources_org_id_name_key"),
    )
    op.create_table(
        "services",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("name_key", sa.Text(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "duration_minutes BETWEEN 5 AND 480", name=op.f("ck_services_duration_range")
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_services_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_services")),
        sa.UniqueConstraint("org_id", "name_key", name="uq_services_org_id_name_key"),
    )
    op.create_table(
        "schedule_exceptions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("resource_id", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("opens", sa.Time(), nullable=True),
        sa.Column("closes", sa.Time(), nullable=True),
        sa.CheckConstraint(
            "(opens IS NULL AND closes IS NULL) OR (opens IS NOT NULL AND closes > opens)",
            name=op.f("ck_schedule_exceptions_closed_or_hours"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "resource_id"],
            ["resources.org_id", "resources.id"],
            name="fk_schedule_exceptions_org_id_resource_id_resources",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_exceptions")),
    )
    op.create_index(
        "ix_schedule_exceptions_resource_id_day",
        "schedule_exceptions",
        ["resource_id", "day"],
        unique=False,
    )
    op.create_table(
        "working_hours",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("resource_id", sa.BigInteger(), nullable=False),
        sa.Column("weekday", sa.SmallInteger(), nullable=False),
        sa.Column("opens", sa.Time(), nullable=False),
        sa.Column("closes", sa.Time(), nullable=False),
        sa.CheckConstraint("closes > opens", name=op.f("ck_working_hours_closes_after_opens")),
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name=op.f("ck_working_hours_weekday_range")),
        sa.ForeignKeyConstraint(
            ["org_id", "resource_id"],
            ["resources.org_id", "resources.id"],
            name="fk_working_hours_org_id_resource_id_resources",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_working_hours")),
    )
    op.create_index("ix_working_hours_resource_id", "working_hours", ["resource_id"], unique=False)

    # Every existing organization gets the default resource a new one gets.
    op.execute(
        "INSERT INTO resources (org_id, name, name_key) SELECT id, 'Main', 'main' FROM organizations"
    )
    op.execute(
        "INSERT INTO working_hours (org_id, resource_id, weekday, opens, closes) "
        "SELECT r.org_id, r.id, d, '09:00', '17:00' FROM resources r, generate_series(0, 4) d"
    )

    op.add_column("appointments", sa.Column("resource_id", sa.BigInteger(), nullable=True))
    op.add_column(
        "appointments", sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "appointments", sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("appointments", sa.Column("cancel_reason", sa.Text(), nullable=True))
    op.add_column(
        "appointments", sa.Column("rescheduled_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute(
        "UPDATE appointments a SET resource_id = r.id, blocked_until = a.ends_at "
        "FROM resources r WHERE r.org_id = a.org_id"
    )
    op.alter_column("appointments", "resource_id", nullable=False)
    op.alter_column("appointments", "blocked_until", nullable=False)
    op.create_foreign_key(
        "fk_appointments_org_id_resource_id_resources",
        "appointments",
        "resources",
        ["org_id", "resource_id"],
        ["org_id", "id"],
    )
    op.create_check_constraint(
        op.f("ck_appointments_blocked_covers_appointment"),
        "appointments",
        "blocked_until >= ends_at",
    )

    overlapping = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT count(*) FROM appointments a JOIN appointments b "
                "ON a.org_id = b.org_id AND a.resource_id = b.resource_id AND a.id < b.id "
                "AND a.status = 'booked' AND b.status = 'booked' "
                "AND tstzrange(a.starts_at, a.blocked_until) && tstzrange(b.starts_at, b.blocked_until)"
            )
        )
        .scalar()
    )
    if overlapping:
        raise RuntimeError(
            f"{overlapping} pairs of booked appointments overlap; move or cancel one of each "
            "pair (or add a resource and assign them) before upgrading"
        )
    op.execute(
        "ALTER TABLE appointments ADD CONSTRAINT ex_appointments_no_overlap EXCLUDE USING gist "
        "(org_id WITH =, resource_id WITH =, tstzrange(starts_at, blocked_until, '[)') WITH &&) "
        "WHERE (status = 'booked')"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE appointments DROP CONSTRAINT ex_appointments_no_overlap")
    op.drop_constraint(
        op.f("ck_appointments_blocked_covers_appointment"), "appointments", type_="check"
    )
    op.drop_constraint(
        "fk_appointments_org_id_resource_id_resources", "appointments", type_="foreignkey"
    )
    op.drop_column("appointments", "rescheduled_at")
    op.drop_column("appointments", "cancel_reason")
    op.drop_column("appointments", "cancelled_at")
    op.drop_column("appointments", "blocked_until")
    op.drop_column("appointments", "resource_id")
    op.drop_index("ix_working_hours_resource_id", table_name="working_hours")
    op.drop_table("working_hours")
    op.drop_index("ix_schedule_exceptions_resource_id_day", table_name="schedule_exceptions")
    op.drop_table("schedule_exceptions")
    op.drop_table("services")
    op.drop_table("resources")
    for name in (
        "buffer_minutes_range",
        "horizon_days_range",
        "min_notice_range",
        "slot_minutes_range",
    ):
        op.drop_constraint(op.f(f"ck_organizations_{name}"), "organizations", type_="check")
    op.drop_column("organizations", "buffer_minutes")
    op.drop_column("organizations", "horizon_days")
    op.drop_column("organizations", "min_notice_minutes")
    op.drop_column("organizations", "slot_minutes")
    # btree_gist stays: other objects may use it, and it holds no data.
