"""ORM models and the constraints the code relies on.

Tables are created by alembic revisions, never by create_all. Every unique constraint includes
org_id, and appointments point at contacts through (org_id, contact_id) so the database itself
refuses to attach one organization's appointment to another's contact.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.db import Base

# Names the code uses in ON CONFLICT clauses and the schema check asserts (see schema_check.py).
UQ_CONTACTS_ORG_PHONE = "uq_contacts_org_phone"
UQ_CONTACTS_ORG_EMAIL_PHONELESS = "uq_contacts_org_email_phoneless"
UQ_CONTACTS_ORG_ID = "uq_contacts_org_id_id"
CK_CONTACTS_PHONE_OR_EMAIL = "ck_contacts_phone_or_email"
UQ_APPOINTMENTS_ORG_REFERENCE = "uq_appointments_org_id_reference"
UQ_TOOL_CALLS_ORG_TOOL_CALL = "uq_tool_calls_org_id_tool_call_id"

APPOINTMENT_STATUSES = ("booked", "cancelled")


class Organization(Base):
    """A business using the service; authenticated by its webhook secret."""

    __tablename__ = "organizations"
    __table_args__ = (
        CheckConstraint("appointment_minutes BETWEEN 5 AND 480", name="appointment_minutes_range"),
        CheckConstraint("phone_region ~ '^[A-Z]{2}$'", name="phone_region_format"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(Text)
    phone_region: Mapped[str] = mapped_column(String(2), server_default="US")
    appointment_minutes: Mapped[int] = mapped_column(Integer, server_default="30")
    # SHA-256 of the secret: secrets are 256-bit random tokens, so a fast hash is enough and
    # the plain secret never touches the database.
    secret_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Contact(Base):
    """One caller of one organization: unique by phone, or by email when phone-less."""

    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("org_id", "phone", name=UQ_CONTACTS_ORG_PHONE),
        # Target of the appointments' composite foreign key (tenant isolation in the database).
        UniqueConstraint("org_id", "id", name=UQ_CONTACTS_ORG_ID),
        CheckConstraint("phone IS NOT NULL OR email IS NOT NULL", name="phone_or_email"),
        Index(
            UQ_CONTACTS_ORG_EMAIL_PHONELESS,
            "org_id",
            "email",
            unique=True,
            postgresql_where=text("phone IS NULL"),
        ),
        # Email lookups for callers who give only an email, whether or not the contact has a phone.
        Index("ix_contacts_org_id_email", "org_id", "email"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    name: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Appointment(Base):
    """A booked (or cancelled) time for a contact; never deleted."""

    __tablename__ = "appointments"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "contact_id"],
            ["contacts.org_id", "contacts.id"],
            name="fk_appointments_org_id_contact_id_contacts",
        ),
        UniqueConstraint("org_id", "reference", name=UQ_APPOINTMENTS_ORG_REFERENCE),
        CheckConstraint("ends_at > starts_at", name="ends_after_starts"),
        CheckConstraint(
            "status IN ('booked', 'cancelled')",
            name="status_known",
        ),
        Index("ix_appointments_org_id_contact_id", "org_id", "contact_id"),
        Index("ix_appointments_org_id_starts_at", "org_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    contact_id: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text, server_default="booked")
    service: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    vapi_call_id: Mapped[str | None] = mapped_column(Text)
    tool_call_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ToolCall(Base):
    """The idempotency ledger: one row per answered VAPI tool call, written with its effects."""

    __tablename__ = "tool_calls"
    __table_args__ = (UniqueConstraint("org_id", "tool_call_id", name=UQ_TOOL_CALLS_ORG_TOOL_CALL),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    tool_call_id: Mapped[str] = mapped_column(Text)
    vapi_call_id: Mapped[str | None] = mapped_column(Text)
    tool_name: Mapped[str] = mapped_column(Text)
    # SHA-256 of the canonical arguments: the same id with other arguments is refused.
    fingerprint: Mapped[str] = mapped_column(Text)
    # {"result": "..."} or {"error": "..."}: exactly what was answered.
    answer: Mapped[dict | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
