"""Organizations: authentication lookups, booking rules, secrets, accepted HMAC signatures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

from sqlalchemy import (
    bindparam,
    delete,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from booking_service.persistence.db import table
from booking_service.persistence.models import (
    UQ_WEBHOOK_SIGNATURES,
    Organization,
    WebhookSignature,
)
from booking_service.persistence.repositories.driver import HotStatement


@dataclass(frozen=True)
class SignatureSeen:
    """A signed request's signature as presented: the how-manieth time, and its answer."""

    attempts: int
    answer: dict | None


@dataclass(frozen=True)
class OrganizationRow:
    """An organization as stored: settings, booking rules and secret hashes."""

    id: int
    name: str
    timezone: str
    phone_region: str
    appointment_minutes: int
    secret_hash: str
    previous_secret_hash: str | None
    previous_secret_expires_at: datetime | None
    hmac_secret: str | None
    slot_minutes: int
    min_notice_minutes: int
    horizon_days: int
    buffer_minutes: int
    max_upcoming_per_caller: int
    reminder_minutes: list[int]
    quiet_from: time | None
    quiet_until: time | None
    created_at: datetime
    config_version: int
    sms_per_day: int = 200
    email_per_day: int = 500
    unverified_bookings_per_day: int = 20


_organizations = table(Organization)
_ORGANIZATION = HotStatement(select(_organizations).where(_organizations.c.id == bindparam("p_id")))
_VERSION = HotStatement(
    select(_organizations.c.config_version).where(_organizations.c.id == bindparam("p_id"))
)


def _organization(row) -> OrganizationRow:
    return OrganizationRow(**row._asdict())


# For reads that fetch the organization beside another row in one statement (an API key, a
# voice platform's settings): its columns labelled apart, and the row made from them.
ORGANIZATION_COLUMNS = [c.label(f"organization_{c.name}") for c in _organizations.c]


def organization_from(values) -> OrganizationRow:
    """The OrganizationRow in `values`, in the order of ORGANIZATION_COLUMNS."""
    return OrganizationRow(**{c.name: v for c, v in zip(_organizations.c, values, strict=True)})


class OrganizationRepository:
    """Organizations and their webhook secret hashes."""

    def __init__(self, session: Session):
        self.session = session

    def get(self, org_id: int) -> OrganizationRow | None:
        """The organization (read-only; every request authenticates with it)."""
        row = _ORGANIZATION.execute(self.session, {"p_id": org_id}).first()
        return _organization(row) if row is not None else None

    def version(self, org_id: int) -> int | None:
        """The organization's config_version (None without such organization)."""
        return _VERSION.execute(self.session, {"p_id": org_id}).scalar()

    def add(
        self,
        *,
        name: str,
        timezone: str,
        phone_region: str,
        appointment_minutes: int,
        secret_hash: str,
    ) -> OrganizationRow:
        """Insert an organization; the booking rules take their server defaults."""
        row = self.session.execute(
            insert(_organizations)
            .values(
                name=name,
                timezone=timezone,
                phone_region=phone_region,
                appointment_minutes=appointment_minutes,
                secret_hash=secret_hash,
            )
            .returning(_organizations)
        ).one()
        return _organization(row)

    def list_all(self) -> list[OrganizationRow]:
        rows = self.session.execute(select(_organizations).order_by(_organizations.c.id))
        return [_organization(row) for row in rows]

    def update_rules(self, org_id: int, values: dict[str, object]) -> OrganizationRow | None:
        """Change booking rules (and the per-caller cap); None when there is no such org."""
        row = self.session.execute(
            update(_organizations)
            .where(_organizations.c.id == org_id)
            .values(**values)
            .returning(_organizations)
        ).first()
        return _organization(row) if row is not None else None

    def present_signature(
        self, org_id: int, signature: str, *, older_than: datetime
    ) -> SignatureSeen:
        """Record that an accepted HMAC signature was presented (once more): how often it has
        been, and the answer stored for it, if any.

        Signatures older than `older_than` are forgotten: their timestamps can no longer pass.
        """
        self.forget_signatures(older_than)
        stmt = (
            insert(WebhookSignature)
            .values(org_id=org_id, signature=signature)
            .on_conflict_do_update(
                constraint=UQ_WEBHOOK_SIGNATURES,
                set_={"attempts": WebhookSignature.attempts + 1},
            )
            .returning(WebhookSignature.attempts, WebhookSignature.answer)
        )
        attempts, answer = self.session.execute(stmt).one()
        return SignatureSeen(attempts=attempts, answer=answer)

    def forget_signatures(self, older_than: datetime) -> None:
        """Drop signatures (and the answers kept for their repeats) seen before `older_than`:
        their timestamps can no longer pass, and the answers hold callers' details."""
        self.session.execute(delete(WebhookSignature).where(WebhookSignature.seen_at < older_than))

    def store_signature_answer(self, org_id: int, signature: str, answer: dict) -> None:
        """Keep the answer given to a signed request, for its repeats."""
        self.session.execute(
            update(WebhookSignature)
            .where(WebhookSignature.org_id == org_id, WebhookSignature.signature == signature)
            .values(answer=answer)
        )

    def hmac_keys(self) -> list[tuple[int, str]]:
        """(org id, stored key) of every organization with an HMAC key, rows locked."""
        rows = self.session.execute(
            select(_organizations.c.id, _organizations.c.hmac_secret)
            .where(_organizations.c.hmac_secret.is_not(None))
            .with_for_update()
        )
        return [(r.id, r.hmac_secret) for r in rows]

    def set_hmac_key(self, org_id: int, key: str | None) -> bool:
        result = self.session.execute(
            update(Organization)
            .where(Organization.id == org_id)
            .values(hmac_secret=key)
            .returning(Organization.id)
        )
        return result.first() is not None

    def set_secret_hash(
        self, org_id: int, secret_hash: str, *, keep_previous_until: datetime | None = None
    ) -> bool:
        """Replace the secret hash; with `keep_previous_until` the old one stays valid till then."""
        values: dict = {"secret_hash": secret_hash}
        if keep_previous_until is not None:
            values["previous_secret_hash"] = Organization.secret_hash
            values["previous_secret_expires_at"] = keep_previous_until
        else:
            values["previous_secret_hash"] = None
            values["previous_secret_expires_at"] = None
        result = self.session.execute(
            update(Organization)
            .where(Organization.id == org_id)
            .values(**values)
            .returning(Organization.id)
        )
        return result.first() is not None
