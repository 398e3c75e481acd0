"""External calendars: CalDAV links of resources, the busy times read from them, the pushes
waiting for the worker, and the secret ICS feeds."""

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
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.persistence.db import Base

WHEN_STALE = ("refuse", "book")
# Where a link's calendar lives: a CalDAV collection, Google Calendar or Microsoft 365 (OAuth),
# or a secret iCal address (read only).
PROVIDERS = ("caldav", "google", "microsoft", "ics")


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
        CheckConstraint(
            "provider IN ('caldav', 'google', 'microsoft', 'ics')", name="provider_known"
        ),
        # An iCal address can only be read.
        CheckConstraint("provider <> 'ics' OR NOT push", name="ics_never_pushes"),
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
    # Which adapter speaks to it (adapters/registry.calendar_providers()). For google and
    # microsoft `password` is the sealed refresh token, `account` the email the provider gave
    # and `calendar_id` the calendar; for ics `password` is the sealed address and `url` it
    # masked.
    provider: Mapped[str] = mapped_column(Text, server_default="caldav")
    account: Mapped[str | None] = mapped_column(Text)
    calendar_id: Mapped[str | None] = mapped_column(Text)
    # The grant was revoked or expired: nothing works until the owner connects again, and
    # the link counts as stale meanwhile.
    reconnect_needed: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # What the provider's adapter wants back on the next read (Google's sync token and the
    # events it has seen, an iCal address's ETag), opaque to everything else.
    sync_state: Mapped[str | None] = mapped_column(Text)


class CalendarRemoteEvent(Base):
    """The id a provider chose for one of our events (Microsoft Graph), kept to change or
    delete that event later."""

    __tablename__ = "calendar_remote_events"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "link_id"],
            ["calendar_links.org_id", "calendar_links.id"],
            ondelete="CASCADE",
            name="fk_calendar_remote_events_org_id_link_id_calendar_links",
        ),
    )

    link_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    uid: Mapped[str] = mapped_column(Text, primary_key=True)
    org_id: Mapped[int] = mapped_column(BigInteger)
    remote_id: Mapped[str] = mapped_column(Text)


class CalendarConnectState(Base):
    """An OAuth connection under way: the random `state` (only its SHA-256 kept), the PKCE
    verifier (sealed), the resource and options it will link, and who started it (web). Used
    once, within 15 minutes."""

    __tablename__ = "calendar_connect_states"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "resource_id"],
            ["resources.org_id", "resources.id"],
            ondelete="CASCADE",
            name="fk_calendar_connect_states_org_id_resource_id_resources",
        ),
        # Keyed by organization like every tenant table; the callback, which knows no
        # organization yet, finds its row by the hash alone (a 256-bit random value).
        UniqueConstraint(
            "org_id", "state_hash", name="uq_calendar_connect_states_org_id_state_hash"
        ),
        Index("ix_calendar_connect_states_state_hash", "state_hash"),
        ForeignKeyConstraint(
            ["org_id", "user_id"],
            ["users.org_id", "users.id"],
            ondelete="CASCADE",
            name="fk_calendar_connect_states_org_id_user_id_users",
        ),
        CheckConstraint("provider IN ('google', 'microsoft')", name="provider_oauth"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE")
    )
    resource_id: Mapped[int] = mapped_column(BigInteger)
    provider: Mapped[str] = mapped_column(Text)
    state_hash: Mapped[str] = mapped_column(Text)
    code_verifier: Mapped[str] = mapped_column(Text)  # sealed
    options: Mapped[dict] = mapped_column(JSONB)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


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
