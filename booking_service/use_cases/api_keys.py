"""API keys of the public REST API: an organization's keys with scopes, shown once and stored
only as a SHA-256 hash, and authentication by key.

A key is the business acting (staff authority) within its scopes: `slots:read` lists free
times, `bookings:read` reads bookings, `bookings:write` books, cancels and moves. A website
widget gets `slots:read` and `bookings:write`, which cannot read anyone's bookings.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from booking_service.domain.errors import InputError, NotFound
from booking_service.persistence.repositories.api_keys import ApiKeyRow
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases.orgs import OrgInfo, get_org_in, hash_secret, org_info

SCOPES = ("slots:read", "bookings:read", "bookings:write")
MAX_NAME_LENGTH = 100
# Keys carry their id so that lookup is by primary key and the hash comparison is
# constant-time; the organization comes from the key's row, never from the request.
_KEY = re.compile(r"^bka_(\d{1,18})_([A-Za-z0-9_-]{20,100})$")
_UNMATCHABLE_HASH = "!"  # not hex: no digest equals it
_DUMMY_HASH = hash_secret("no such key")


@dataclass(frozen=True)
class ApiKeyInfo:
    """A key as its organization's owners see it (never the key itself)."""

    id: int
    org_id: int
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "org_id": self.org_id,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass(frozen=True)
class CreatedKey:
    """A new key and its plain value (shown once)."""

    info: ApiKeyInfo
    key: str


@dataclass(frozen=True)
class ApiCaller:
    """Who a request with a good key is: the organization, the key and what it may do."""

    org: OrgInfo
    key_id: int
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        return scope in self.scopes


def _info(row: ApiKeyRow) -> ApiKeyInfo:
    return ApiKeyInfo(
        row.id, row.org_id, row.name, tuple(row.scopes), row.created_at, row.revoked_at
    )


def checked_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    """The scopes, deduplicated in SCOPES order; InputError for an unknown or no scope."""
    wanted = {s.strip() for s in scopes if s.strip()}
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise InputError("scopes", f"unknown scope {unknown[0]!r}", SCOPES)
    if not wanted:
        raise InputError("scopes", "give at least one scope", SCOPES)
    return [s for s in SCOPES if s in wanted]


def add_key(
    uow: AbstractUnitOfWork, org_id: int, scopes: list[str] | tuple[str, ...], name: str = ""
) -> CreatedKey:
    """Make a key for the organization; commits. NotFound without such organization."""
    clean_scopes = checked_scopes(scopes)
    clean_name = " ".join((name or "").split())
    if len(clean_name) > MAX_NAME_LENGTH:
        raise InputError("name", f"must be at most {MAX_NAME_LENGTH} characters")
    with uow:
        get_org_in(uow, org_id)
        # The key embeds its id, known only after the insert: a hash no key matches first.
        row = uow.api_keys.add(org_id, clean_name, clean_scopes, _UNMATCHABLE_HASH)
        key = f"bka_{row.id}_{secrets.token_urlsafe(32)}"
        uow.api_keys.set_hash(row.id, hash_secret(key))
        uow.commit()
    return CreatedKey(_info(row), key)


def list_keys(uow: AbstractUnitOfWork, org_id: int) -> list[ApiKeyInfo]:
    """The organization's keys, revoked ones included, oldest first."""
    with uow:
        return [_info(row) for row in uow.api_keys.of_org(org_id)]


def revoke_key(uow: AbstractUnitOfWork, key_id: int, org_id: int | None = None) -> ApiKeyInfo:
    """Revoke a key (only one of `org_id`, when given); commits. From now on it
    authenticates nothing. NotFound when there is no such key (of that organization)."""
    with uow:
        row = uow.api_keys.revoke(key_id, org_id)
        if row is None:
            raise NotFound("api key", key_id)
        uow.commit()
    return _info(row)


def authenticate_key(uow: AbstractUnitOfWork, presented: str | None) -> ApiCaller | None:
    """The caller a key stands for, or None (unknown, malformed or revoked key).
    Constant-time in the key."""
    if not presented:
        return None
    match = _KEY.match(presented)
    digest = hash_secret(presented)
    with uow:
        found = uow.api_keys.get_with_org(int(match.group(1))) if match else None
    if found is None:
        hmac.compare_digest(digest, _DUMMY_HASH)  # as long as a real comparison
        return None
    row, org = found
    if not hmac.compare_digest(digest, row.key_hash) or row.revoked_at is not None:
        return None
    return ApiCaller(org_info(org), row.id, frozenset(row.scopes))
