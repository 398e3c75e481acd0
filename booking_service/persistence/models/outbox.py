"""The outbox of webhooks: events, the endpoints that want them, one delivery per event and
endpoint, and every attempt at a delivery."""

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
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.persistence.db import Base

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
