"""The public REST API's keys and the answers it keeps for repeated Idempotency-Keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.persistence.db import Base

# The name the idempotency claim's ON CONFLICT names (and schema_check.py asserts).
UQ_API_REQUESTS_KEY_IDEMPOTENCY = "uq_api_requests_org_id_api_key_id_idempotency_key"


class ApiKey(Base):
    """A key an organization gives a website, a widget or an automation: what it may do
    (`scopes`) and its SHA-256 hash (the key itself is shown once and never stored)."""

    __tablename__ = "api_keys"
    __table_args__ = (
        Index("ix_api_keys_org_id", "org_id"),
        # What an answer's composite foreign key points at: a key of the same organization.
        UniqueConstraint("org_id", "id", name="uq_api_keys_org_id_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(Text, server_default="")
    key_hash: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # A revoked key stays listed (who had access, until when) but authenticates nothing.
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiRequest(Base):
    """One POST answered under an Idempotency-Key, per API key, written in the same
    transaction as its effects: a repeat gets the stored status and body and changes nothing."""

    __tablename__ = "api_requests"
    __table_args__ = (
        UniqueConstraint(
            "org_id", "api_key_id", "idempotency_key", name=UQ_API_REQUESTS_KEY_IDEMPOTENCY
        ),
        # Keyed by organization like every tenant table: an answer cannot name another
        # organization's key.
        ForeignKeyConstraint(
            ["org_id", "api_key_id"],
            ["api_keys.org_id", "api_keys.id"],
            ondelete="CASCADE",
            name="fk_api_requests_org_id_api_key_id_api_keys",
        ),
        # The worker forgets answers past their retention by age.
        Index("ix_api_requests_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    api_key_id: Mapped[int] = mapped_column(BigInteger)
    idempotency_key: Mapped[str] = mapped_column(Text)
    # SHA-256 of method, path and canonical body: the same key with another request is refused.
    fingerprint: Mapped[str] = mapped_column(Text)
    status: Mapped[int | None] = mapped_column(Integer)
    answer: Mapped[dict | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
