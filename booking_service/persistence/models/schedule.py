"""What can be booked and when: resources, their weekly hours and dated exceptions, and the
catalogue of services."""

from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    SmallInteger,
    Text,
    Time,
    UniqueConstraint,
    func,
)
from sqlalchemy import (
    Date as SqlDate,
)
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.persistence.db import Base

# Names the code uses in ON CONFLICT clauses and the schema check asserts (see schema_check.py).
UQ_RESOURCES_ORG_ID = "uq_resources_org_id_id"
UQ_RESOURCES_ORG_NAME = "uq_resources_org_id_name_key"
UQ_SERVICES_ORG_NAME = "uq_services_org_id_name_key"


class Resource(Base):
    """Something bookable (a hygienist, a chair, a room) with its own hours."""

    __tablename__ = "resources"
    __table_args__ = (
        UniqueConstraint("org_id", "id", name=UQ_RESOURCES_ORG_ID),
        # name_key = lower(trimmed name): names are unique per organization, case-insensitively.
        UniqueConstraint("org_id", "name_key", name=UQ_RESOURCES_ORG_NAME),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(Text)
    name_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WorkingHours(Base):
    """A weekly opening range of a resource, in the organization's local time."""

    __tablename__ = "working_hours"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "resource_id"],
            ["resources.org_id", "resources.id"],
            ondelete="CASCADE",
            name="fk_working_hours_org_id_resource_id_resources",
        ),
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        CheckConstraint("closes > opens", name="closes_after_opens"),
        Index("ix_working_hours_resource_id", "resource_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(BigInteger)
    resource_id: Mapped[int] = mapped_column(BigInteger)
    weekday: Mapped[int] = mapped_column(SmallInteger)  # 0 = Monday
    opens: Mapped[time] = mapped_column(Time)
    closes: Mapped[time] = mapped_column(Time)


class ScheduleException(Base):
    """A dated change to a resource's hours: closed all day (no times) or these hours instead."""

    __tablename__ = "schedule_exceptions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "resource_id"],
            ["resources.org_id", "resources.id"],
            ondelete="CASCADE",
            name="fk_schedule_exceptions_org_id_resource_id_resources",
        ),
        CheckConstraint(
            "(opens IS NULL AND closes IS NULL) OR (opens IS NOT NULL AND closes > opens)",
            name="closed_or_hours",
        ),
        Index("ix_schedule_exceptions_resource_id_day", "resource_id", "day"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(BigInteger)
    resource_id: Mapped[int] = mapped_column(BigInteger)
    day: Mapped[date] = mapped_column(SqlDate)
    opens: Mapped[time | None] = mapped_column(Time)
    closes: Mapped[time | None] = mapped_column(Time)


class Service(Base):
    """A named service with its duration, e.g. "cleaning", 60 minutes."""

    __tablename__ = "services"
    __table_args__ = (
        UniqueConstraint("org_id", "name_key", name=UQ_SERVICES_ORG_NAME),
        CheckConstraint("duration_minutes BETWEEN 5 AND 480", name="duration_range"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(Text)
    name_key: Mapped[str] = mapped_column(Text)
    duration_minutes: Mapped[int] = mapped_column(Integer)
