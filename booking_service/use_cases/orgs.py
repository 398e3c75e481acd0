"""Organizations: creation, webhook secrets, and authentication by secret."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from booking_service.domain.errors import InputError, NotFound, StaleOrganization
from booking_service.domain.normalize import is_valid_region
from booking_service.domain.scheduling import Rules
from booking_service.domain.times import utc_now
from booking_service.persistence.org_cache import OrgCache
from booking_service.persistence.repositories.organizations import OrganizationRow
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases.signatures import new_hmac_key

# Secrets carry their organization id so that lookup is by primary key and the comparison of
# the hash is constant-time; the organization is never taken from the request payload.
_SECRET = re.compile(r"^bks_(\d{1,18})_([A-Za-z0-9_-]{20,100})$")
# Not hex, so no SHA-256 digest ever equals it.
_UNMATCHABLE_HASH = "!"
_DUMMY_HASH = hashlib.sha256(b"no such organization").hexdigest()


class OrgInputError(InputError):
    """Invalid organization settings; the message says which and why."""


@dataclass(frozen=True)
class OrgInfo:
    """What a request needs to know about the authenticated organization."""

    id: int
    name: str
    timezone: str
    phone_region: str
    appointment_minutes: int
    rules: Rules = field(default_factory=Rules)
    # Upcoming booked appointments one caller (a phone, or an email when phone-less) may hold.
    max_upcoming_per_caller: int = 4
    # Budgets (#24): texts and emails a local day, and bookings a local day for a phone number
    # that is not the verified caller's own.
    sms_per_day: int = 200
    email_per_day: int = 500
    unverified_bookings_per_day: int = 20
    # The HMAC key when the organization requires signed requests (never logged or shown).
    hmac_key: str | None = field(default=None, repr=False)  # as stored: sealed
    # The organization's config_version when it was read (see persistence/org_cache.py).
    version: int = 0
    # Read from this worker's cache, not from the database in this request: its version must
    # be confirmed by a statement of the request before anything is answered.
    cached: bool = False

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class CreatedOrg:
    """A new organization and its plain secret (shown once, stored only as a hash)."""

    org: OrgInfo
    secret: str


def _info(org: OrganizationRow, *, cached: bool = False) -> OrgInfo:
    return OrgInfo(
        id=org.id,
        name=org.name,
        timezone=org.timezone,
        phone_region=org.phone_region,
        appointment_minutes=org.appointment_minutes,
        rules=Rules(
            slot_minutes=org.slot_minutes,
            min_notice_minutes=org.min_notice_minutes,
            horizon_days=org.horizon_days,
            buffer_minutes=org.buffer_minutes,
        ),
        max_upcoming_per_caller=org.max_upcoming_per_caller,
        sms_per_day=org.sms_per_day,
        email_per_day=org.email_per_day,
        unverified_bookings_per_day=org.unverified_bookings_per_day,
        hmac_key=org.hmac_secret,
        version=org.config_version,
        cached=cached,
    )


def org_info(org: OrganizationRow) -> OrgInfo:
    """What a request needs to know of a stored organization."""
    return _info(org)


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a secret (secrets are 256-bit random, so no slow KDF is needed)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _new_secret(org_id: int) -> str:
    return f"bks_{org_id}_{secrets.token_urlsafe(32)}"


def validate_timezone(name: str) -> str:
    """Return `name` if it is an IANA time zone zoneinfo knows, else raise OrgInputError."""
    if not name or name != name.strip() or ("/" not in name and name != "UTC"):
        raise OrgInputError(f"unknown time zone {name!r} (expected an IANA name like Europe/Paris)")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise OrgInputError(
            f"unknown time zone {name!r} (expected an IANA name like Europe/Paris)"
        ) from None
    return name


def create_org(
    uow: AbstractUnitOfWork,
    *,
    name: str,
    timezone: str,
    phone_region: str = "US",
    appointment_minutes: int = 30,
) -> CreatedOrg:
    """Create an organization and return it with its freshly generated webhook secret."""
    name = " ".join((name or "").split())
    if not name:
        raise OrgInputError("the organization needs a name")
    validate_timezone(timezone)
    region = (phone_region or "").strip().upper()
    if not is_valid_region(region):
        raise OrgInputError(
            f"unknown phone region {phone_region!r} (expected ISO 3166 alpha-2, e.g. US, GB)"
        )
    if not 5 <= appointment_minutes <= 480:
        raise OrgInputError("appointment minutes must be between 5 and 480")
    with uow:
        # The secret embeds the id, which exists only after the insert: store a placeholder
        # hash that no secret can match, then the real one, in the same transaction.
        org = uow.organizations.add(
            name=name,
            timezone=timezone,
            phone_region=region,
            appointment_minutes=appointment_minutes,
            secret_hash=_UNMATCHABLE_HASH,
        )
        secret = _new_secret(org.id)
        uow.organizations.set_secret_hash(org.id, hash_secret(secret))
        add_default_resource(uow, org.id)
        info = _info(org)
        uow.commit()
    return CreatedOrg(org=info, secret=secret)


DEFAULT_RESOURCE = "Main"
DEFAULT_HOURS = "mon-fri 09:00-17:00"


def add_default_resource(uow: AbstractUnitOfWork, org_id: int) -> None:
    """A new organization can take bookings at once: one resource open Mon-Fri 09:00-17:00."""
    from booking_service.use_cases.resources import add_resource_in

    add_resource_in(uow, org_id, DEFAULT_RESOURCE, [DEFAULT_HOURS])


RULE_LIMITS = {
    "slot_minutes": (5, 240),
    "min_notice_minutes": (0, 43200),
    "horizon_days": (1, 730),
    "buffer_minutes": (0, 240),
    "max_upcoming_per_caller": (1, 100),
    "sms_per_day": (0, 100_000),
    "email_per_day": (0, 100_000),
    "unverified_bookings_per_day": (0, 100_000),
}


def update_rules(
    uow: AbstractUnitOfWork,
    org_id: int,
    *,
    messaging: dict[str, object] | None = None,
    **values: int | None,
) -> OrgInfo:
    """Change booking rules, the per-caller cap and the daily budgets; None values are left
    alone.
    `messaging`: reminder and quiet-hour columns, already checked
    (use_cases.messaging.reminder_values).

    Raises NotFound when there is no such organization.
    """
    numbers = {k: v for k, v in values.items() if v is not None}
    for key, value in numbers.items():
        low, high = RULE_LIMITS[key]
        if not low <= value <= high:
            raise OrgInputError(key, f"must be between {low} and {high}")
    changes: dict[str, object] = {**numbers, **(messaging or {})}
    if not changes:
        return get_org(uow, org_id)
    with uow:
        org = uow.organizations.update_rules(org_id, changes)
        if org is None:
            raise NotFound("organization", org_id)
        info = _info(org)
        uow.commit()
    return info


def rotate_secret(uow: AbstractUnitOfWork, org_id: int, grace_minutes: int = 0) -> str:
    """Replace the organization's secret and return the new one (NotFound without such org).

    With `grace_minutes` the old secret keeps working that long (both work meanwhile).
    """
    if not 0 <= grace_minutes <= 60 * 24 * 30:
        raise OrgInputError("grace_minutes", "must be between 0 minutes and 30 days")
    secret = _new_secret(org_id)
    until = utc_now() + timedelta(minutes=grace_minutes) if grace_minutes else None
    with uow:
        if not uow.organizations.set_secret_hash(
            org_id, hash_secret(secret), keep_previous_until=until
        ):
            raise NotFound("organization", org_id)
        uow.commit()
    return secret


def set_hmac(uow: AbstractUnitOfWork, org_id: int, *, enable: bool) -> str | None:
    """Require HMAC-signed requests (returns the new key) or stop requiring them (None).

    Raises NotFound when there is no such organization.
    """
    key = new_hmac_key() if enable else None
    # Stored sealed (SECRET_KEY), like every secret the service must read back.
    stored = uow.secrets.seal(key) if key else None
    with uow:
        if not uow.organizations.set_hmac_key(org_id, stored):
            raise NotFound("organization", org_id)
        uow.commit()
    return key


def get_org(uow: AbstractUnitOfWork, org_id: int) -> OrgInfo:
    """The organization with this id; NotFound without one."""
    with uow:
        return get_org_in(uow, org_id)


def get_org_in(uow: AbstractUnitOfWork, org_id: int) -> OrgInfo:
    """`get_org` as a step, in the caller's transaction."""
    org = uow.organizations.get(org_id)
    if org is None:
        raise NotFound("organization", org_id)
    return _info(org)


def org_in(uow: AbstractUnitOfWork, org_id: int) -> OrgInfo | None:
    """The organization with this id, read in the caller's transaction (a step), or None."""
    org = uow.organizations.get(org_id)
    return _info(org) if org is not None else None


def list_orgs(uow: AbstractUnitOfWork) -> list[OrgInfo]:
    """All organizations, oldest first."""
    with uow:
        return [_info(org) for org in uow.organizations.list_all()]


def _secret_fits(org: OrganizationRow, presented: str) -> bool:
    """The presented secret's hash is the organization's, or its previous one still in its
    grace period. Constant-time in the secret."""
    ok = hmac.compare_digest(presented, org.secret_hash)
    if not ok and org.previous_secret_hash:
        still_valid = (
            org.previous_secret_expires_at is not None
            and org.previous_secret_expires_at > utc_now()
        )
        ok = hmac.compare_digest(presented, org.previous_secret_hash) and still_valid
    return ok


def authenticate(
    uow: AbstractUnitOfWork, secret: str | None, cache: OrgCache | None = None
) -> OrgInfo | None:
    """Return the organization whose secret this is, or None. Constant-time in the secret.

    With a `cache`, a secret that fits the organization as this worker last read it is
    accepted without a statement, marked `cached` (the caller must confirm its version in the
    request, see org_cache); anything else is read from the database (`uow` is entered only
    then), and an organization read so is kept for the next request, unless it requires
    signed requests (those read it every time, beside the signature's own statements).
    """
    if not secret:
        return None
    match = _SECRET.match(secret)
    org_id = int(match.group(1)) if match else 0
    presented = hash_secret(secret)
    if cache is not None and match:
        kept = cache.row(org_id)
        if kept is not None and _secret_fits(kept, presented):
            return _info(kept, cached=True)
    with uow:
        org = uow.organizations.get(org_id) if match else None
    if org is None:
        hmac.compare_digest(presented, _DUMMY_HASH)  # as long as a real comparison
        return None
    if not _secret_fits(org, presented):
        return None
    if cache is not None and org.hmac_secret is None:
        cache.keep_row(org)
    return _info(org)


def confirm_org(uow: AbstractUnitOfWork, org: OrgInfo) -> None:
    """For an organization from the cache: raise StaleOrganization unless its version is
    still the stored one (one statement). Nothing to do for one read in this request."""
    if not org.cached:
        return
    with uow:
        current = uow.organizations.version(org.id)
    if current != org.version:
        raise StaleOrganization(org.id)
