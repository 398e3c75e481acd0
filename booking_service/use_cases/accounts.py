"""Accounts for the owner's web page: users, passwords, sign-in and its lock.

Passwords are hashed with werkzeug's scrypt (memory-hard; werkzeug is already Flask's own
dependency). Ten failed sign-ins for one email from one source address within 15 minutes lock
that email for that source for 15 minutes, whether or not a user has it: the answer never tells
which emails exist. The lock is per source so that a stranger who knows the owner's email
cannot keep the owner out: the stranger's guesses lock only the stranger's address.

Guessing from many addresses at once (a botnet) is bounded too, without handing the attacker a
way to lock the owner out: once one email has had EMAIL_FAILURE_LIMIT attempts within the
window across all sources, a source that has already failed for it in the window gets no
further comparison until its window ends. A source that has not failed (the owner at the
office) still signs in; each attacking address then gets one guess per window instead of ten.

scrypt takes tens of milliseconds of a core and the threads a request needs: at most
HASHING_SLOTS sign-ins per process compare a password at once, and one that finds no free slot
is answered "busy" at once (never queued), so a sign-in flood cannot take the threads the voice
webhook needs.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from werkzeug.security import check_password_hash, generate_password_hash

from booking_service.domain.errors import InputError, NotFound
from booking_service.domain.normalize import normalize_email, unstorable_character
from booking_service.domain.times import utc_now
from booking_service.persistence.models import USER_ROLES as ROLES
from booking_service.persistence.repositories.counters import EMAIL_TAKEN
from booking_service.persistence.repositories.users import UserRow
from booking_service.persistence.unit_of_work import AbstractUnitOfWork

log = logging.getLogger(__name__)

FAILURE_LIMIT = 10  # per email and source address
FAILURE_WINDOW = timedelta(minutes=15)
LOCK_DURATION = timedelta(minutes=15)
# Attempts on one email within the window, all sources together, beyond which a source that has
# already failed for it is refused (see the module docstring): far above what an owner and their
# staff mistype, far below what a botnet with ten guesses per address would get.
EMAIL_FAILURE_LIMIT = 100
# Password comparisons at once per process. gunicorn runs a few threads per worker and a worker
# per half core: one scrypt per worker keeps the cores for the webhook during a flood.
HASHING_SLOTS = 1
_hashing = threading.BoundedSemaphore(HASHING_SLOTS)
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 200  # scrypt's cost grows with the input; a megabyte "password" is an attack


@functools.cache
def _no_such_user() -> str:
    """Compared against when no user has the email, so an unknown email costs as much as a
    known one (made on first use: hashing costs time every CLI start need not pay)."""
    return generate_password_hash(secrets.token_urlsafe(16))


class AccountInputError(InputError):
    """Invalid account input; the message says which and why."""


class SignInLocked(Exception):
    """Too many failed sign-ins for this email; `until` is when it may try again."""

    def __init__(self, until: datetime):
        super().__init__(until)
        self.until = until


class SignInFailed(Exception):
    """Wrong email or password (the same error either way)."""


class SignInBusy(Exception):
    """Every password-hashing slot of this process is taken: try again in a moment (nothing
    was counted or compared)."""


def sign_in_source(address: str | None) -> str:
    """The key a client address is throttled under: an IPv4 address as it is, an IPv6 address
    as its /64 (one subscriber gets a whole /64, so single IPv6 addresses would give an attacker
    endless fresh counters), "" when unknown (the CLI, a Unix socket without a proxy)."""
    try:
        ip = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return ""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(frozen=True)
class Account:
    """A user as a page or the CLI shows them (never the hash)."""

    id: int
    org_id: int
    email: str
    role: str
    session_epoch: int
    created_at: datetime

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "org_id": self.org_id,
            "email": self.email,
            "role": self.role,
            "created_at": self.created_at.isoformat(),
        }


def _account(row: UserRow) -> Account:
    return Account(row.id, row.org_id, row.email, row.role, row.session_epoch, row.created_at)


@dataclass(frozen=True)
class NewPassword:
    """An account and its password in plain text, to be shown once."""

    account: Account
    password: str


def _checked_email(raw: str) -> str:
    email = normalize_email(raw)
    if email is None:
        raise AccountInputError("the email address is not valid")
    return email.lower()


def _checked_password(password: str | None) -> str:
    if password is None:
        return secrets.token_urlsafe(12)  # 96 bits, 16 characters
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise AccountInputError(
            f"the password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long"
        )
    return password


# "Taken" answers an organization may get per UTC day from its web page. Emails are unique
# across organizations (sign-in needs nothing else), so "taken" with no such user in one's own
# list says "another organization has it": at most this many such answers a day, then adding
# users from the page pauses until tomorrow whatever the address, so the pause says nothing.
TAKEN_ANSWERS_PER_DAY = 10


class EmailTaken(AccountInputError):
    """The email belongs to a user already (of this organization or another: the same answer)."""

    def __init__(self) -> None:
        super().__init__(
            "a user with this email already exists, in this organization or another: if they "
            "are one of yours, reset their password instead; otherwise ask for another address"
        )


class TooManyTaken(AccountInputError):
    """The organization had its day's share of "email taken" answers: no more adds today."""

    def __init__(self) -> None:
        super().__init__(
            "too many addresses that were already in use were tried today; adding users "
            "resumes tomorrow (UTC), or ask the service's operator"
        )


def add_user(
    uow: AbstractUnitOfWork,
    org_id: int,
    email: str,
    role: str,
    password: str | None = None,
    *,
    limit_taken: bool = False,
    now: datetime | None = None,
) -> NewPassword:
    """Create a user of the organization; without `password` one is generated. Returns the
    password to show once. AccountInputError for a bad email, role or password; EmailTaken for
    an email already in use, in this organization or another (one answer: see
    TAKEN_ANSWERS_PER_DAY); with `limit_taken` (the web page), TooManyTaken once the
    organization had its day's share of those; NotFound without such organization."""
    if role not in ROLES:
        raise AccountInputError(f"the role must be one of: {', '.join(ROLES)}")
    address = _checked_email(email)
    plain = _checked_password(password)
    hashed = generate_password_hash(plain)
    day = (now or utc_now()).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with uow:
        if uow.organizations.get(org_id) is None:
            raise NotFound("organization", org_id)
        # Checked before the insert, whatever the address: once paused, a free address is
        # refused like a taken one, so the refusal says nothing about either.
        if limit_taken and uow.counters.current(org_id, EMAIL_TAKEN, day) >= TAKEN_ANSWERS_PER_DAY:
            raise TooManyTaken()
        row = uow.users.add(org_id, address, role, hashed)
        if row is None:
            uow.counters.count(org_id, EMAIL_TAKEN, day)
            uow.commit()
            raise EmailTaken()
        uow.commit()
    log.info("user added: id=%s org=%s role=%s", row.id, org_id, role)
    return NewPassword(_account(row), plain)


def list_users(uow: AbstractUnitOfWork, org_id: int) -> list[Account]:
    """The organization's users by email (NotFound without such organization)."""
    with uow:
        if uow.organizations.get(org_id) is None:
            raise NotFound("organization", org_id)
        return [_account(row) for row in uow.users.of_org(org_id)]


def reset_password(
    uow: AbstractUnitOfWork, user_id: int, password: str | None = None, *, org_id: int | None = None
) -> NewPassword:
    """Give the user a new password (generated unless given), end every session they have and
    lift the sign-in locks on their email (from every source). `org_id` scopes the change (a
    page passes its own)."""
    plain = _checked_password(password)
    hashed = generate_password_hash(plain)
    with uow:
        current = uow.users.get(user_id)
        if current is None or (org_id is not None and current.org_id != org_id):
            raise NotFound("user", user_id)
        row = uow.users.set_password(user_id, hashed)
        if row is None:  # pragma: no cover - removed between the two statements
            raise NotFound("user", user_id)
        uow.users.clear_failures(row.email)  # every source
        uow.commit()
    log.info("password reset: user=%s", user_id)
    return NewPassword(_account(row), plain)


def remove_user(uow: AbstractUnitOfWork, org_id: int, user_id: int) -> None:
    """Remove a user of the organization (their sessions end with them)."""
    with uow:
        if not uow.users.remove(org_id, user_id):
            raise NotFound("user", user_id)
        uow.commit()


def sign_in(
    uow: AbstractUnitOfWork, email: str, password: str, now: datetime, *, source: str = ""
) -> Account:
    """The account whose email and password these are, tried from `source` (a client address
    as `sign_in_source` keys it). SignInBusy when no hashing slot is free (nothing counted);
    SignInLocked while the email is locked for this source, or the email is under attack from
    many sources and this source has failed already (the password is not even compared);
    SignInFailed otherwise.

    Every attempt is counted before its password is compared, in one statement: however many
    guesses arrive at once from one source, at most FAILURE_LIMIT of them are ever compared
    within a window. A correct password clears the count of this source."""
    address = (normalize_email(email) or " ".join(email.split())).lower()[:320]
    if not address or unstorable_character(address) is not None:
        raise SignInFailed()  # no user can have it: nothing to count or compare
    # Taken before anything is counted, so an attempt answered "busy" costs the person
    # nothing; never waited for, so a flood is answered at once instead of holding threads.
    if not _hashing.acquire(blocking=False):
        raise SignInBusy()
    try:
        return _sign_in(uow, address, password, now, source)
    finally:
        _hashing.release()


def _sign_in(
    uow: AbstractUnitOfWork, address: str, password: str, now: datetime, source: str
) -> Account:
    with uow:
        locked = uow.users.locked_until(address, source, now)
        if locked is not None:
            raise SignInLocked(locked)
        attempts, locked = uow.users.count_attempt(
            address, source, now, limit=FAILURE_LIMIT, window=FAILURE_WINDOW, lock=LOCK_DURATION
        )
        everywhere = uow.users.email_attempts(address, now - FAILURE_WINDOW)
        row = uow.users.by_email(address)
        uow.commit()
    if attempts > FAILURE_LIMIT:  # parallel guesses: others used up the window's attempts
        raise SignInLocked(locked or now + LOCK_DURATION)
    if everywhere > EMAIL_FAILURE_LIMIT and attempts > 1:
        # Guessed at from many addresses, and this one has failed already: no more comparisons
        # from it this window. An address that has not failed is still compared.
        log.warning("sign-in refused: one email guessed at from many addresses")
        raise SignInLocked(locked or now + FAILURE_WINDOW)
    # Compared outside any transaction: scrypt takes a while and needs no connection.
    candidate = password[:MAX_PASSWORD_LENGTH]
    stored = row.password_hash if row is not None else _no_such_user()
    if check_password_hash(stored, candidate) and row is not None:
        with uow:
            uow.users.clear_failures(address, source)
            uow.commit()
        return _account(row)
    if locked is not None:
        log.warning("sign-in locked after %d failures in 15 minutes", FAILURE_LIMIT)
        raise SignInLocked(locked)
    raise SignInFailed()


def sign_out(uow: AbstractUnitOfWork, user_id: int) -> None:
    """End every session of the user: a session cookie carries no secret of its own, so a copy
    of it must stop working too, not only the browser's."""
    with uow:
        uow.users.end_sessions(user_id)
        uow.commit()


def signed_in(uow: AbstractUnitOfWork, user_id: int, epoch: int) -> Account | None:
    """The account of a session cookie, unless it was removed or its password was reset since."""
    with uow:
        row = uow.users.get(user_id)
    if row is None or row.session_epoch != epoch:
        return None
    return _account(row)
