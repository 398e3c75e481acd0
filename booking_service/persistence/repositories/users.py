"""Users of the owner's web page, and the throttle on failed sign-ins per email and source."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from booking_service.persistence.db import table
from booking_service.persistence.models import SignInThrottle, User

_users = table(User)
_throttles = table(SignInThrottle)


@dataclass(frozen=True)
class UserRow:
    """A user as use cases see it (the password hash included: only sign-in compares it)."""

    id: int
    org_id: int
    email: str
    role: str
    password_hash: str
    session_epoch: int
    created_at: datetime


_COLUMNS = [_users.c[f.name] for f in fields(UserRow)]


def _user(row) -> UserRow | None:
    return UserRow(*row) if row is not None else None


# One statement per attempt, so concurrent attempts for one email and source are all counted: the
# attempts of the last 15 minutes (a sliding window), this one included, at most 20 kept; the one
# that reaches the limit sets the lock (a lock already running is not extended).
_COUNT_ATTEMPT = text(
    """
    INSERT INTO sign_in_throttles AS t
        (email, source, recent_attempts, last_attempt_at, locked_until)
    VALUES (:email, :source, ARRAY[CAST(:now AS timestamptz)], :now,
            CASE WHEN :limit <= 1 THEN CAST(:locked_until AS timestamptz) END)
    ON CONFLICT (email, source) DO UPDATE SET
        recent_attempts = ARRAY(
            SELECT a FROM unnest(array_append(t.recent_attempts, CAST(:now AS timestamptz))) AS a
            WHERE a > :window_start ORDER BY a DESC LIMIT 20),
        last_attempt_at = GREATEST(t.last_attempt_at, :now),
        -- SET sees the row as it was: this attempt is the "+ 1".
        locked_until = CASE
            WHEN (SELECT count(*) FROM unnest(t.recent_attempts) AS a WHERE a > :window_start)
                 + 1 >= :limit
                 AND (t.locked_until IS NULL OR t.locked_until <= :now)
            THEN CAST(:locked_until AS timestamptz)
            ELSE t.locked_until
        END
    RETURNING cardinality(t.recent_attempts) AS attempts, t.locked_until
    """
)


class UserRepository:
    """Users, scoped to their organization wherever a request names one."""

    def __init__(self, session: Session):
        self.session = session

    def add(self, org_id: int, email: str, role: str, password_hash: str) -> UserRow | None:
        """The new user, or None when the email is taken (by anybody, in any organization)."""
        row = self.session.execute(
            insert(_users)
            .values(org_id=org_id, email=email, role=role, password_hash=password_hash)
            .on_conflict_do_nothing(constraint="uq_users_email")
            .returning(*_COLUMNS)
        ).first()
        return _user(row)

    def get(self, user_id: int) -> UserRow | None:
        return _user(self.session.execute(select(*_COLUMNS).where(_users.c.id == user_id)).first())

    def by_email(self, email: str) -> UserRow | None:
        return _user(self.session.execute(select(*_COLUMNS).where(_users.c.email == email)).first())

    def of_org(self, org_id: int) -> list[UserRow]:
        rows = self.session.execute(
            select(*_COLUMNS).where(_users.c.org_id == org_id).order_by(_users.c.email)
        )
        return [UserRow(*row) for row in rows]

    def set_password(self, user_id: int, password_hash: str) -> UserRow | None:
        """New hash and a new session epoch (every signed-in session ends)."""
        row = self.session.execute(
            update(_users)
            .where(_users.c.id == user_id)
            .values(password_hash=password_hash, session_epoch=_users.c.session_epoch + 1)
            .returning(*_COLUMNS)
        ).first()
        return _user(row)

    def end_sessions(self, user_id: int) -> None:
        """A new session epoch: every cookie signed with the old one is refused."""
        self.session.execute(
            update(_users)
            .where(_users.c.id == user_id)
            .values(session_epoch=_users.c.session_epoch + 1)
        )

    def remove(self, org_id: int, user_id: int) -> bool:
        removed = self.session.execute(
            delete(_users).where(_users.c.org_id == org_id, _users.c.id == user_id)
        ).rowcount  # type: ignore[attr-defined]
        return bool(removed)

    # --- the sign-in throttle ---------------------------------------------------------------

    def locked_until(self, email: str, source: str, now: datetime) -> datetime | None:
        """When the lock on this email for this source ends, if it is locked now."""
        until = self.session.execute(
            select(_throttles.c.locked_until).where(
                _throttles.c.email == email, _throttles.c.source == source
            )
        ).scalar()
        return until if until is not None and until > now else None

    def count_attempt(
        self,
        email: str,
        source: str,
        now: datetime,
        *,
        limit: int,
        window: timedelta,
        lock: timedelta,
    ) -> tuple[int, datetime | None]:
        """Count a sign-in attempt before its password is compared: (attempts on this email
        from this source within the window, this one included; when the lock of this email
        for this source ends, if it is locked)."""
        row = self.session.execute(
            _COUNT_ATTEMPT,
            {
                "email": email,
                "source": source,
                "now": now,
                "window_start": now - window,
                "limit": limit,
                "locked_until": now + lock,
            },
        ).one()
        until = row.locked_until
        return row.attempts, until if until is not None and until > now else None

    def email_attempts(self, email: str, since: datetime) -> int:
        """Attempts on this email since `since`, from every source together (each source keeps
        at most its last 20: enough to tell many sources from one)."""
        recent = (
            select(func.unnest(_throttles.c.recent_attempts).label("at"))
            .where(_throttles.c.email == email)
            .subquery()
        )
        return self.session.execute(
            select(func.count()).select_from(recent).where(recent.c.at > since)
        ).scalar_one()

    def clear_failures(self, email: str, source: str | None = None) -> None:
        """Forget the failed attempts on this email: from `source` only (a correct password
        from there), or from every source when None (a password reset)."""
        query = delete(_throttles).where(_throttles.c.email == email)
        if source is not None:
            query = query.where(_throttles.c.source == source)
        self.session.execute(query)

    def forget_throttles(self, before: datetime) -> int:
        """Drop counters whose last attempt and lock both ended before `before` (any email
        and source can create one, so they must not pile up)."""
        return self.session.execute(  # type: ignore[attr-defined]
            delete(_throttles).where(
                _throttles.c.last_attempt_at < before,
                or_(_throttles.c.locked_until.is_(None), _throttles.c.locked_until < before),
            )
        ).rowcount
