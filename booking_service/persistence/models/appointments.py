"""Contacts and their appointments, with the constraints that guard bookings.

A contact is one caller of one organization (unique by phone, or by email when phone-less).
Appointments point at contacts through (org_id, contact_id), so the database itself refuses to
attach one organization's appointment to another's contact, and an exclusion constraint refuses
two overlapping bookings of one resource.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.persistence.db import Base

# Names the code uses in ON CONFLICT clauses and the schema check asserts (see schema_check.py).
UQ_CONTACTS_ORG_PHONE = "uq_contacts_org_phone"
UQ_CONTACTS_ORG_EMAIL_PHONELESS = "uq_contacts_org_email_phoneless"
UQ_CONTACTS_ORG_ID = "uq_contacts_org_id_id"
CK_CONTACTS_PHONE_OR_EMAIL = "ck_contacts_phone_or_email"
UQ_APPOINTMENTS_ORG_REFERENCE = "uq_appointments_org_id_reference"
# The guard against double booking: no two booked appointments of one resource may overlap,
# buffers included (blocked_until = ends_at + the organization's buffer at booking time).
EX_APPOINTMENTS_NO_OVERLAP = "ex_appointments_no_overlap"

APPOINTMENT_STATUSES = ("booked", "cancelled")


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
        ForeignKeyConstraint(
            ["org_id", "resource_id"],
            ["resources.org_id", "resources.id"],
            name="fk_appointments_org_id_resource_id_resources",
        ),
        UniqueConstraint("org_id", "reference", name=UQ_APPOINTMENTS_ORG_REFERENCE),
        # Target of the notifications' composite foreign key.
        UniqueConstraint("org_id", "id", name="uq_appointments_org_id_id"),
        CheckConstraint("ends_at > starts_at", name="ends_after_starts"),
        CheckConstraint("blocked_until >= ends_at", name="blocked_covers_appointment"),
        ExcludeConstraint(
            ("org_id", "="),
            ("resource_id", "="),
            (func.tstzrange(text("starts_at"), text("blocked_until"), "[)"), "&&"),
            # A marked appointment (completed, no-show) still held its chair until its end.
            where=text("status <> 'cancelled'"),
            using="gist",
            name=EX_APPOINTMENTS_NO_OVERLAP,
        ),
        CheckConstraint(
            "status IN ('booked', 'cancelled', 'completed', 'no_show')",
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
    resource_id: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # End of the time this booking keeps the resource busy: ends_at plus the buffer.
    blocked_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text, server_default="booked")
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    rescheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A catalogue service name only: free text a caller typed never lands here (see notes).
    service: Mapped[str | None] = mapped_column(Text)
    # What the caller typed (notes, a service outside any catalogue): for staff, never returned
    # by a tool, since an assistant would read it out as instructions.
    notes: Mapped[str | None] = mapped_column(Text)
    # The name and email given for this booking. The contact keeps its own (first) ones, so a
    # booking for somebody else's number neither renames them nor is renamed later.
    name: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    vapi_call_id: Mapped[str | None] = mapped_column(Text)
    tool_call_id: Mapped[str | None] = mapped_column(Text)
    # The iCalendar SEQUENCE of its calendar event: + 1 on every move or cancellation, so a
    # calendar applies the newer version of the same UID.
    sequence: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Booked while a linked calendar could not be checked (policy "book"): staff confirm it.
    unconfirmed: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # When the caller confirmed it by replying to a confirmation or reminder (#29).
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
