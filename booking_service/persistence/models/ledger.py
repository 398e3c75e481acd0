"""The idempotency ledger: one row per answered tool call of any platform, with its effects."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.persistence.db import Base

# The name the code uses in ON CONFLICT clauses and the schema check asserts (schema_check.py).
UQ_TOOL_CALLS_ORG_TOOL_CALL = "uq_tool_calls_org_id_tool_call_id"


class ToolCall(Base):
    """The idempotency ledger: one row per answered tool call of any platform, with its effects."""

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
    # The voice platform that sent it (vapi, retell, elevenlabs); `vapi_call_id` holds that
    # platform's call id (the name predates the other platforms).
    platform: Mapped[str] = mapped_column(Text, server_default="vapi")
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
