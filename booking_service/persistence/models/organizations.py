"""The organization (a business using the service) and the HMAC signatures it has accepted.

An organization is authenticated by its webhook secret; its booking rules, message budgets and
config_version live on its row. WebhookSignature keeps the answer given to each signed request,
so a replayed one gets that answer instead of a second run.
"""

from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    Time,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.persistence.db import Base

UQ_WEBHOOK_SIGNATURES = "uq_webhook_signatures_org_id_signature"


class Organization(Base):
    """A business using the service; authenticated by its webhook secret."""

    __tablename__ = "organizations"
    __table_args__ = (
        CheckConstraint("appointment_minutes BETWEEN 5 AND 480", name="appointment_minutes_range"),
        CheckConstraint("phone_region ~ '^[A-Z]{2}$'", name="phone_region_format"),
        CheckConstraint("slot_minutes BETWEEN 5 AND 240", name="slot_minutes_range"),
        CheckConstraint("min_notice_minutes BETWEEN 0 AND 43200", name="min_notice_range"),
        CheckConstraint("horizon_days BETWEEN 1 AND 730", name="horizon_days_range"),
        CheckConstraint("buffer_minutes BETWEEN 0 AND 240", name="buffer_minutes_range"),
        CheckConstraint(
            "max_upcoming_per_caller BETWEEN 1 AND 100", name="max_upcoming_per_caller_range"
        ),
        CheckConstraint("sms_per_day BETWEEN 0 AND 100000", name="sms_per_day_range"),
        CheckConstraint("email_per_day BETWEEN 0 AND 100000", name="email_per_day_range"),
        CheckConstraint(
            "unverified_bookings_per_day BETWEEN 0 AND 100000",
            name="unverified_bookings_per_day_range",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(Text)
    phone_region: Mapped[str] = mapped_column(String(2), server_default="US")
    appointment_minutes: Mapped[int] = mapped_column(Integer, server_default="30")
    # SHA-256 of the secret: secrets are 256-bit random tokens, so a fast hash is enough and
    # the plain secret never touches the database.
    secret_hash: Mapped[str] = mapped_column(Text)
    # After a rotation with a grace period the old secret works until this time, so VAPI's
    # credential can be updated without refusing calls in between.
    previous_secret_hash: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Key for VAPI's optional HMAC credential. Verifying an HMAC needs the key itself (unlike
    # the bearer secret, which is only compared by hash), so it is sealed (SECRET_KEY).
    hmac_secret: Mapped[str | None] = mapped_column(Text)
    # Booking rules: start granularity, minimum notice, how far ahead, gap after each booking.
    slot_minutes: Mapped[int] = mapped_column(Integer, server_default="15")
    min_notice_minutes: Mapped[int] = mapped_column(Integer, server_default="60")
    horizon_days: Mapped[int] = mapped_column(Integer, server_default="60")
    buffer_minutes: Mapped[int] = mapped_column(Integer, server_default="0")
    # How many upcoming booked appointments one caller (a phone, or an email when phone-less)
    # may hold: one number must not be able to fill the diary.
    max_upcoming_per_caller: Mapped[int] = mapped_column(Integer, server_default="4")
    # Reminders go out this many minutes before each appointment (empty: none).
    reminder_minutes: Mapped[list[int]] = mapped_column(
        ARRAY(Integer), server_default=text("'{1440,120}'")
    )
    # No SMS between these local times (both NULL: no quiet hours); may wrap midnight.
    quiet_from: Mapped[time | None] = mapped_column(Time)
    quiet_until: Mapped[time | None] = mapped_column(Time)
    # Budgets on what the business sends and on what strangers can make it send: at most this
    # many SMS and emails a local day, and this many bookings a day for a phone number that is
    # not the verified caller's own (each one texts a number nobody proved is theirs).
    sms_per_day: Mapped[int] = mapped_column(Integer, server_default=text("200"))
    email_per_day: Mapped[int] = mapped_column(Integer, server_default=text("500"))
    unverified_bookings_per_day: Mapped[int] = mapped_column(Integer, server_default=text("20"))
    # Changes whenever this row, its resources or its services change (triggers; migration
    # a7d2e9c4b1f6): a worker's cached copy of them is valid while it is unchanged.
    config_version: Mapped[int] = mapped_column(
        BigInteger, server_default=text("nextval('organization_config_versions')")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WebhookSignature(Base):
    """HMAC signatures already accepted, with the answer given to each.

    A repeat of a signature (nginx re-sending a request after a worker died, or a captured
    request replayed inside the window) gets the stored answer, never a second run of its
    work; a repeat before any answer was stored runs again (its tool calls are idempotent by
    toolCallId), a bounded number of times.
    """

    __tablename__ = "webhook_signatures"
    __table_args__ = (
        UniqueConstraint("org_id", "signature", name=UQ_WEBHOOK_SIGNATURES),
        Index("ix_webhook_signatures_seen_at", "seen_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    signature: Mapped[str] = mapped_column(Text)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # How often this signature was presented (the first time included).
    attempts: Mapped[int] = mapped_column(SmallInteger, server_default=text("1"))
    # The JSON answer given to it, once there is one.
    answer: Mapped[dict | None] = mapped_column(JSONB)
