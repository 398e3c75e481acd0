"""ORM models and the constraints the code relies on.

Tables are created by alembic revisions, never by create_all. Every unique constraint includes
org_id, and appointments point at contacts through (org_id, contact_id) so the database itself
refuses to attach one organization's appointment to another's contact.
"""

from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
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
from sqlalchemy import (
    Date as SqlDate,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.persistence.db import Base

# Names the code uses in ON CONFLICT clauses and the schema check asserts (see schema_check.py).
UQ_CONTACTS_ORG_PHONE = "uq_contacts_org_phone"
UQ_CONTACTS_ORG_EMAIL_PHONELESS = "uq_contacts_org_email_phoneless"
UQ_CONTACTS_ORG_ID = "uq_contacts_org_id_id"
CK_CONTACTS_PHONE_OR_EMAIL = "ck_contacts_phone_or_email"
UQ_APPOINTMENTS_ORG_REFERENCE = "uq_appointments_org_id_reference"
UQ_TOOL_CALLS_ORG_TOOL_CALL = "uq_tool_calls_org_id_tool_call_id"
UQ_RESOURCES_ORG_ID = "uq_resources_org_id_id"
UQ_RESOURCES_ORG_NAME = "uq_resources_org_id_name_key"
UQ_SERVICES_ORG_NAME = "uq_services_org_id_name_key"
# The guard against double booking: no two booked appointments of one resource may overlap,
# buffers included (blocked_until = ends_at + the organization's buffer at booking time).
EX_APPOINTMENTS_NO_OVERLAP = "ex_appointments_no_overlap"
UQ_WEBHOOK_SIGNATURES = "uq_webhook_signatures_org_id_signature"

APPOINTMENT_STATUSES = ("booked", "cancelled")


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
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ToolCall(Base):
    """The idempotency ledger: one row per answered VAPI tool call, written with its effects."""

    __tablename__ = "tool_calls"
    __table_args__ = (
        UniqueConstraint("org_id", "tool_call_id", name=UQ_TOOL_CALLS_ORG_TOOL_CALL),
        # The change limit counts the rows of one limit key on every change.
        Index("ix_tool_calls_org_id_limit_key", "org_id", "limit_key"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    tool_call_id: Mapped[str] = mapped_column(Text)
    vapi_call_id: Mapped[str | None] = mapped_column(Text)
    # The verified caller's number (E.164), if any: a stored answer goes back only to the same
    # organization, VAPI call and caller.
    caller: Mapped[str | None] = mapped_column(Text)
    # What the change limit counts by: "call:<VAPI call id>", else "caller:<number>", else
    # "request:<request id>" (a request without a call id cannot escape the limit).
    limit_key: Mapped[str] = mapped_column(Text)
    tool_name: Mapped[str] = mapped_column(Text)
    # SHA-256 of the canonical arguments: the same id with other arguments is refused.
    fingerprint: Mapped[str] = mapped_column(Text)
    # {"result": "..."} or {"error": "..."}: exactly what was answered.
    answer: Mapped[dict | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


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


DELIVERY_STATUSES = ("pending", "delivered", "failed")


class OutboxEvent(Base):
    """An event that happened, written in the same transaction as the change it describes."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        # The public id (webhook-id): the same on every attempt and replay.
        UniqueConstraint("org_id", "event_id", name="uq_outbox_events_org_id_event_id"),
        # Target of the deliveries' composite foreign key (tenant isolation in the database).
        UniqueConstraint("org_id", "id", name="uq_outbox_events_org_id_id"),
        Index("ix_outbox_events_org_id_created_at", "org_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    event_id: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    # The body delivered: {"type", "timestamp", "data"}.
    payload: Mapped[dict] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WebhookEndpoint(Base):
    """Where an organization wants its events, and the secret(s) that sign them."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (UniqueConstraint("org_id", "id", name="uq_webhook_endpoints_org_id_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    url: Mapped[str] = mapped_column(Text)
    # Event types sent there; NULL means all.
    events: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    # Signing needs the secret itself, so it is stored sealed (secrets_box, SECRET_KEY), not hashed.
    secret: Mapped[str] = mapped_column(Text)
    # After a rotation with a grace period both secrets sign until this time.
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # The circuit breaker: attempts that failed in a row, and until when the endpoint is not
    # tried at all (its deliveries wait), so a dead or slow receiver stops costing a slot.
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    circuit_open_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WebhookDelivery(Base):
    """One event to one endpoint: pending until delivered, or failed after the last retry."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # A delivery points at an event and an endpoint of its own organization only.
        ForeignKeyConstraint(
            ["org_id", "event_id"],
            ["outbox_events.org_id", "outbox_events.id"],
            ondelete="CASCADE",
            name="fk_webhook_deliveries_org_id_event_id_outbox_events",
        ),
        ForeignKeyConstraint(
            ["org_id", "endpoint_id"],
            ["webhook_endpoints.org_id", "webhook_endpoints.id"],
            ondelete="CASCADE",
            name="fk_webhook_deliveries_org_id_endpoint_id_webhook_endpoints",
        ),
        UniqueConstraint(
            "org_id",
            "event_id",
            "endpoint_id",
            name="uq_webhook_deliveries_org_id_event_id_endpoint_id",
        ),
        UniqueConstraint("org_id", "id", name="uq_webhook_deliveries_org_id_id"),
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status_known"),
        # What the worker asks on every poll: the due pending deliveries, oldest first.
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_endpoint_id", "endpoint_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[int] = mapped_column(BigInteger)
    endpoint_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WebhookAttempt(Base):
    """Every attempt at a delivery, so an owner can see exactly why an event did not arrive."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "delivery_id"],
            ["webhook_deliveries.org_id", "webhook_deliveries.id"],
            ondelete="CASCADE",
            name="fk_webhook_attempts_org_id_delivery_id_webhook_deliveries",
        ),
        Index("ix_webhook_attempts_delivery_id", "delivery_id"),
        # /metrics counts the last hour's attempts by outcome.
        Index("ix_webhook_attempts_attempted_at", "attempted_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(BigInteger)
    delivery_id: Mapped[int] = mapped_column(BigInteger)
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    # delivered | retry | failed | disabled
    outcome: Mapped[str] = mapped_column(Text)


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


NOTIFICATION_KINDS = ("confirmation", "reminder", "rescheduled", "cancelled")
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
            "kind IN ('confirmation', 'reminder', 'rescheduled', 'cancelled')", name="kind_known"
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


WHEN_STALE = ("refuse", "book")


class CalendarLink(Base):
    """A resource's calendar on a CalDAV server: bookings pushed to it, its busy times read.

    The credentials are sealed (secrets_box, SECRET_KEY). `last_good_sync_at` is the end of
    the last poll that read every event; older than `max_staleness_minutes`, the link is stale
    and `when_stale` decides what a booking on its resource gets.
    """

    __tablename__ = "calendar_links"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "resource_id"],
            ["resources.org_id", "resources.id"],
            ondelete="CASCADE",
            name="fk_calendar_links_org_id_resource_id_resources",
        ),
        UniqueConstraint("org_id", "id", name="uq_calendar_links_org_id_id"),
        CheckConstraint("when_stale IN ('refuse', 'book')", name="when_stale_known"),
        CheckConstraint("max_staleness_minutes BETWEEN 1 AND 10080", name="max_staleness_range"),
        Index("ix_calendar_links_org_id_resource_id", "org_id", "resource_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    resource_id: Mapped[int] = mapped_column(BigInteger)
    url: Mapped[str] = mapped_column(Text)
    username: Mapped[str | None] = mapped_column(Text)
    password: Mapped[str | None] = mapped_column(Text)  # sealed
    push: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    block: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    max_staleness_minutes: Mapped[int] = mapped_column(Integer, server_default=text("15"))
    when_stale: Mapped[str] = mapped_column(Text, server_default="refuse")
    last_poll_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_good_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Polls that failed in a row, and when the next may start: a link that keeps failing backs
    # off exponentially instead of taking a poll slot every round.
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_poll_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CalendarBusy(Base):
    """A time the owner's own calendar says a resource is busy (read by the worker's poll)."""

    __tablename__ = "calendar_busy"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "link_id"],
            ["calendar_links.org_id", "calendar_links.id"],
            ondelete="CASCADE",
            name="fk_calendar_busy_org_id_link_id_calendar_links",
        ),
        CheckConstraint("ends_at > starts_at", name="ends_after_starts"),
        Index(
            "ix_calendar_busy_org_id_resource_id_starts_at", "org_id", "resource_id", "starts_at"
        ),
        Index("ix_calendar_busy_link_id", "link_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(BigInteger)
    link_id: Mapped[int] = mapped_column(BigInteger)
    resource_id: Mapped[int] = mapped_column(BigInteger)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CalendarPush(Base):
    """An appointment changed and a linked calendar must be brought up to date.

    Written (insert only, so a booking never waits on the worker) in the change's transaction;
    the worker puts the appointment's current state (its VEVENT, or no event) and marks every
    push of that link and appointment it has covered as done.
    """

    __tablename__ = "calendar_pushes"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "link_id"],
            ["calendar_links.org_id", "calendar_links.id"],
            ondelete="CASCADE",
            name="fk_calendar_pushes_org_id_link_id_calendar_links",
        ),
        ForeignKeyConstraint(
            ["org_id", "appointment_id"],
            ["appointments.org_id", "appointments.id"],
            ondelete="CASCADE",
            name="fk_calendar_pushes_org_id_appointment_id_appointments",
        ),
        CheckConstraint("status IN ('pending', 'done')", name="status_known"),
        Index(
            "ix_calendar_pushes_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_calendar_pushes_link_id_appointment_id", "link_id", "appointment_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(BigInteger)
    link_id: Mapped[int] = mapped_column(BigInteger)
    appointment_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_error: Mapped[str | None] = mapped_column(Text)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CalendarFeed(Base):
    """A secret ICS subscription URL for one resource, or (no resource) the whole organization.

    Only the token's SHA-256 is stored: the URL is shown once; --rotate replaces it.
    """

    __tablename__ = "calendar_feeds"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "resource_id"],
            ["resources.org_id", "resources.id"],
            ondelete="CASCADE",
            name="fk_calendar_feeds_org_id_resource_id_resources",
        ),
        # The token carries the organization's id (`<org id>.<random>`), so the lookup is
        # scoped like every other: no value of one organization can collide with another's.
        UniqueConstraint("org_id", "token_hash", name="uq_calendar_feeds_org_id_token_hash"),
        # One feed per resource, and one for the whole organization.
        Index(
            "uq_calendar_feeds_org_id_resource_id",
            "org_id",
            "resource_id",
            unique=True,
            postgresql_where=text("resource_id IS NOT NULL"),
        ),
        Index(
            "uq_calendar_feeds_org_id_whole",
            "org_id",
            unique=True,
            postgresql_where=text("resource_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    resource_id: Mapped[int | None] = mapped_column(BigInteger)
    token_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


USER_ROLES = ("owner", "staff")


class User(Base):
    """A person who signs in to the owner's web page: an owner or a member of staff of one
    organization. The email is stored lower-cased and is unique across organizations, so
    signing in needs nothing but the email and the password."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("email", name="uq_users_email"),
        CheckConstraint("role IN ('owner', 'staff')", name="role_known"),
        CheckConstraint("email = lower(email)", name="email_lower_case"),
        Index("ix_users_org_id", "org_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    email: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    # werkzeug's scrypt hash (memory-hard); the password itself is never stored or logged.
    password_hash: Mapped[str] = mapped_column(Text)
    # Part of every session cookie: a password reset bumps it, which signs out every session.
    session_epoch: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SignInThrottle(Base):
    """Failed sign-ins per email and source address (any email, whether or not a user has it,
    so the lock says nothing about which exist): a lock keeps out the source that guessed, not
    the owner signing in from elsewhere."""

    __tablename__ = "sign_in_throttles"
    __table_args__ = (Index("ix_sign_in_throttles_last_attempt_at", "last_attempt_at"),)

    email: Mapped[str] = mapped_column(Text, primary_key=True)
    # The client's address as nginx saw it ("" when unknown, e.g. the CLI).
    source: Mapped[str] = mapped_column(Text, primary_key=True, server_default="")
    # The attempts of the last 15 minutes (a sliding window; at most 20 kept), counted before
    # the password is compared, so parallel guesses cannot slip past the limit.
    recent_attempts: Mapped[list[datetime]] = mapped_column(ARRAY(DateTime(timezone=True)))
    last_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OrgCounter(Base):
    """A per-organization count within a fixed window (a local day, a minute): daily SMS and
    email budgets, bookings for unverified numbers, "send again" presses. One atomic upsert
    both counts and answers, so parallel requests cannot slip past a limit."""

    __tablename__ = "org_counters"

    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    action: Mapped[str] = mapped_column(Text, primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    count: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class SmsInbound(Base):
    """Inbound SMS already acted on, by Twilio's MessageSid: a replayed signed STOP or START
    changes nothing the second time."""

    __tablename__ = "sms_inbound"
    __table_args__ = (Index("ix_sms_inbound_received_at", "received_at"),)

    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    message_sid: Mapped[str] = mapped_column(Text, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
