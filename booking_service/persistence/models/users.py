"""The people who sign in to the owner's web page, and the throttle on failed sign-ins."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.persistence.db import Base

USER_ROLES = ("owner", "staff")


class User(Base):
    """A person who signs in to the owner's web page: an owner or a member of staff of one
    organization. The email is stored lower-cased and is unique across organizations, so
    signing in needs nothing but the email and the password."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("email", name="uq_users_email"),
        # What a tenant table's composite foreign key to a user points at (#26).
        UniqueConstraint("org_id", "id", name="uq_users_org_id_id"),
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
