"""Users of the owner's web page, and the per-email throttle on failed sign-ins."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import bindparam, case, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from booking_service.db import table
from booking_service.models import SignInThrottle, User

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


# One statement, so concurrent failures for one email are all counted: the first failure of a
# window starts it, the tenth inside it sets the lock.
_FAILURE = insert(_throttles).values(
    email=bindparam("p_email"),
    failures=1,
    window_started_at=bindparam("p_now"),
    locked_until=None,
)
_in_window = _throttles.c.window_started_at > bindparam("p_window_start")
_counted = case((_in_window, _throttles.c.failures + 1), else_=1)
_RECORD_FAILURE = _FAILURE.on_conflict_do_update(
    index_elements=[_throttles.c.email],
    set_={
        "failures": _counted,
        "window_started_at": case(
            (_in_window, _throttles.c.window_started_at), else_=bindparam("p_now")
        ),
        "locked_until": case(
            (_counted >= bindparam("p_limit"), bindparam("p_locked_until")),
            else_=_throttles.c.locked_until,
        ),
    },
).returning(_throttles.c.failures, _throttles.c.locked_until)


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

    def remove(self, org_id: int, user_id: int) -> bool:
        removed = self.session.execute(
            delete(_users).where(_users.c.org_id == org_id, _users.c.id == user_id)
        ).rowcount  # type: ignore[attr-defined]
        return bool(removed)

    # --- the sign-in throttle ---------------------------------------------------------------

    def locked_until(self, email: str, now: datetime) -> datetime | None:
        """When the lock on this email ends, if it is locked now."""
        until = self.session.execute(
            select(_throttles.c.locked_until).where(_throttles.c.email == email)
        ).scalar()
        return until if until is not None and until > now else None

    def record_failure(
        self, email: str, now: datetime, *, limit: int, window: timedelta, lock: timedelta
    ) -> datetime | None:
        """Count a failed sign-in; returns when the lock ends if this failure set one."""
        row = self.session.execute(
            _RECORD_FAILURE,
            {
                "p_email": email,
                "p_now": now,
                "p_window_start": now - window,
                "p_limit": limit,
                "p_locked_until": now + lock,
            },
        ).one()
        return row.locked_until if row.locked_until is not None and row.locked_until > now else None

    def clear_failures(self, email: str) -> None:
        self.session.execute(delete(_throttles).where(_throttles.c.email == email))

    def forget_throttles(self, before: datetime) -> int:
        """Drop counters whose window and lock both ended before `before` (any email can
        create one, so they must not pile up)."""
        return self.session.execute(  # type: ignore[attr-defined]
            delete(_throttles).where(
                _throttles.c.window_started_at < before,
                or_(_throttles.c.locked_until.is_(None), _throttles.c.locked_until < before),
            )
        ).rowcount
