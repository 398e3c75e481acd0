"""Per-organization counts within a fixed window (daily budgets, rate limits)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.persistence.db import Base


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
