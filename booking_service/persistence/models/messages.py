"""Messages to callers: an organization's SMS and email settings, the notifications the
worker sends, the numbers that opted out, and the inbound SMS already acted on."""

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
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.persistence.db import Base


class MessagingSettings(Base):
    """How an organization sends SMS (Twilio) and email; secrets sealed with SECRET_KEY."""

    __tablename__ = "messaging_settings"

    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    sms_enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    twilio_account_sid: Mapped[str | None] = mapped_column(Text)
    # Sealed (Fernet, key from SECRET_KEY): "fernet:<token>".
    twilio_auth_token: Mapped[str | None] = mapped_column(Text)
    sms_from: Mapped[str | None] = mapped_column(Text)
    messaging_service_sid: Mapped[str | None] = mapped_column(Text)
    # ISO 3166 regions SMS may go to (a guard against SMS pumping).
    sms_countries: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    email_enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    email_from: Mapped[str | None] = mapped_column(Text)
    email_reply_to: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# waitlist_offer: a freed time offered to a waiting caller; its appointment_id is the
# appointment whose cancellation or move freed the time (#29).
NOTIFICATION_KINDS = ("confirmation", "reminder", "rescheduled", "cancelled", "waitlist_offer")
NOTIFICATION_STATUSES = ("pending", "sending", "sent", "skipped", "failed", "opted_out")


class Notification(Base):
    """One message to one caller: written in the booking's transaction, sent by the worker.

    `sending` is recorded (committed) before the provider is called, so a worker that dies
    mid-call leaves a row in doubt that is resolved by asking the provider, never re-sent blind.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "appointment_id"],
            ["appointments.org_id", "appointments.id"],
            ondelete="CASCADE",
            name="fk_notifications_org_id_appointment_id_appointments",
        ),
        CheckConstraint(
            "kind IN ('confirmation', 'reminder', 'rescheduled', 'cancelled', 'waitlist_offer')",
            name="kind_known",
        ),
        CheckConstraint("channel IN ('sms', 'email')", name="channel_known"),
        CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'skipped', 'failed', 'opted_out')",
            name="status_known",
        ),
        Index("ix_notifications_org_id_appointment_id", "org_id", "appointment_id"),
        # What the worker asks on every poll: pending messages that are due.
        Index("ix_notifications_due", "due_at", postgresql_where=text("status = 'pending'")),
        Index(
            "ix_notifications_sending", "attempted_at", postgresql_where=text("status = 'sending'")
        ),
        # The per-number daily cap counts what was sent to a number.
        Index("ix_notifications_org_id_to_address_sent_at", "org_id", "to_address", "sent_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(BigInteger)
    appointment_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(Text)
    to_address: Mapped[str] = mapped_column(Text)
    # Minutes before the start, for reminders.
    offset_minutes: Mapped[int | None] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    attempted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    provider_id: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    # The text as sent (SMS body or email subject), so an in-doubt send can be matched.
    body: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SmsOptOut(Base):
    """A number that replied STOP to an organization: it gets no SMS from it."""

    __tablename__ = "sms_opt_outs"

    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    phone: Mapped[str] = mapped_column(Text, primary_key=True)
    opted_out_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # What did it: a keyword (STOP, ...) or Twilio's error 21610.
    source: Mapped[str] = mapped_column(Text)


class SmsInbound(Base):
    """Inbound SMS already acted on, by Twilio's MessageSid: a replayed signed STOP or START
    changes nothing the second time, and a replayed reply gets the answer it got first."""

    __tablename__ = "sms_inbound"
    __table_args__ = (Index("ix_sms_inbound_received_at", "received_at"),)

    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    message_sid: Mapped[str] = mapped_column(Text, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # The text answered to a reply (#29), so a retried request is answered the same.
    answer: Mapped[str | None] = mapped_column(Text)
