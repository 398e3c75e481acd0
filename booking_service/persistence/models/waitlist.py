"""The waitlist (#29): callers waiting for a time, the times freed by a cancellation or a
move, and the offers texted to the first in line.

An entry is `waiting` until a freed time that fits it is offered (`offered`), then `booked`
when its YES books it, or `waiting` again when the offer lapses or the time is gone;
`expired` once its window has passed. Offers are first-come: nothing is held (see
docs/MESSAGES.md#the-waitlist), the exclusion constraint decides a YES like any booking.
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
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.persistence.db import Base

WAITLIST_STATUSES = ("waiting", "offered", "booked", "expired")
PARTS_OF_DAY = ("any", "morning", "afternoon", "evening")
OFFER_STATUSES = ("open", "taken", "lapsed", "gone")


class WaitlistEntry(Base):
    """One caller waiting for a time within [window_start, window_end)."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "contact_id"],
            ["contacts.org_id", "contacts.id"],
            ondelete="CASCADE",
            name="fk_waitlist_entries_org_id_contact_id_contacts",
        ),
        # Target of the offers' composite foreign key (tenant isolation in the database).
        UniqueConstraint("org_id", "id", name="uq_waitlist_entries_org_id_id"),
        CheckConstraint(
            "status IN ('waiting', 'offered', 'booked', 'expired')", name="status_known"
        ),
        CheckConstraint(
            "part_of_day IN ('any', 'morning', 'afternoon', 'evening')", name="part_known"
        ),
        CheckConstraint("window_end > window_start", name="window_ordered"),
        CheckConstraint("duration_minutes BETWEEN 5 AND 1440", name="duration_range"),
        # The worker's question: who waits, in the order they joined.
        Index(
            "ix_waitlist_entries_waiting",
            "org_id",
            "id",
            postgresql_where=text("status IN ('waiting', 'offered')"),
        ),
        Index("ix_waitlist_entries_org_id_contact_id", "org_id", "contact_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    contact_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str | None] = mapped_column(Text)
    # A catalogue service name, or None (then duration_minutes alone).
    service: Mapped[str | None] = mapped_column(Text)
    duration_minutes: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    part_of_day: Mapped[str] = mapped_column(Text, server_default="any")
    status: Mapped[str] = mapped_column(Text, server_default="waiting")
    appointment_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WaitlistOpening(Base):
    """A time freed by a cancellation or a move, written in the change's transaction; the
    worker offers it to the waiting entries it fits, one at a time, until it is taken, gone
    or nobody is left (`done_at`)."""

    __tablename__ = "waitlist_openings"
    __table_args__ = (
        UniqueConstraint("org_id", "id", name="uq_waitlist_openings_org_id_id"),
        Index("ix_waitlist_openings_open", "id", postgresql_where=text("done_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    # The appointment whose cancellation or move freed the time (the offer's message hangs
    # on it in `notifications`).
    appointment_id: Mapped[int] = mapped_column(BigInteger)
    resource: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WaitlistOffer(Base):
    """A freed time texted to one entry, open until `expires_at`."""

    __tablename__ = "waitlist_offers"
    __table_args__ = (
        # One offer of one opening per entry: a lapsed offer is not made again.
        UniqueConstraint(
            "org_id", "opening_id", "entry_id", name="uq_waitlist_offers_org_id_opening_id_entry_id"
        ),
        ForeignKeyConstraint(
            ["org_id", "opening_id"],
            ["waitlist_openings.org_id", "waitlist_openings.id"],
            ondelete="CASCADE",
            name="fk_waitlist_offers_org_id_opening_id_waitlist_openings",
        ),
        ForeignKeyConstraint(
            ["org_id", "entry_id"],
            ["waitlist_entries.org_id", "waitlist_entries.id"],
            ondelete="CASCADE",
            name="fk_waitlist_offers_org_id_entry_id_waitlist_entries",
        ),
        CheckConstraint("status IN ('open', 'taken', 'lapsed', 'gone')", name="status_known"),
        Index("ix_waitlist_offers_entry_id", "entry_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    opening_id: Mapped[int] = mapped_column(BigInteger)
    entry_id: Mapped[int] = mapped_column(BigInteger)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resource: Mapped[str] = mapped_column(Text)
    offered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text, server_default="open")
    appointment_id: Mapped[int | None] = mapped_column(BigInteger)
