"""What each voice platform needs per organization, and what a call told us afterwards.

- voice_platform_settings: the Retell API key that signs Retell's requests, the ElevenLabs
  post-call webhook secret (both sealed with SECRET_KEY: verifying needs the key itself), the
  VAPI assistant answered to `assistant-request`, and whether recording URLs are kept;
- call_reports: one row per platform call (end-of-call report, call_analyzed,
  post_call_transcription), stored once however often the platform sends it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.persistence.db import Base

UQ_CALL_REPORTS_ORG_PLATFORM_CALL = "uq_call_reports_org_id_platform_call_id"


class VoicePlatformSettings(Base):
    """An organization's settings for the voice platforms beside VAPI's bearer secret."""

    __tablename__ = "voice_platform_settings"

    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    # Sealed (SECRET_KEY); Retell signs every request with the account's API key.
    retell_api_key: Mapped[str | None] = mapped_column(Text)
    # Sealed (SECRET_KEY); ElevenLabs signs post-call webhooks with this shared secret.
    elevenlabs_webhook_secret: Mapped[str | None] = mapped_column(Text)
    # The VAPI assistant `assistant-request` answers with (None: that message gets {}).
    vapi_assistant_id: Mapped[str | None] = mapped_column(Text)
    # Recording URLs point at the caller's voice: kept only when the business opts in.
    keep_recordings: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class CallReport(Base):
    """What a platform reported after a call, with what the call did according to the ledger.

    Every text here is caller-influenced (the summary is a model's reading of what the caller
    said): it is shown escaped to staff and never spoken to anyone."""

    __tablename__ = "call_reports"
    __table_args__ = (
        UniqueConstraint("org_id", "platform", "call_id", name=UQ_CALL_REPORTS_ORG_PLATFORM_CALL),
        Index("ix_call_reports_org_id_ended_at", "org_id", "ended_at"),
        # The appointment page finds the calls that touched its reference.
        Index("ix_call_reports_references", "references", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    platform: Mapped[str] = mapped_column(Text)  # vapi, retell or elevenlabs
    call_id: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_reason: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    structured_data: Mapped[dict | None] = mapped_column(JSONB)
    recording_url: Mapped[str | None] = mapped_column(Text)
    # References of the appointments this call booked, moved or cancelled (from the ledger).
    references: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    outcome: Mapped[str] = mapped_column(Text)  # booked, changed or none
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
