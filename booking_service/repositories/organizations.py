"""Organizations: authentication lookups, booking rules, secrets, accepted HMAC signatures."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Row,
    bindparam,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from booking_service.models import (
    UQ_WEBHOOK_SIGNATURES,
    Organization,
    WebhookSignature,
)

_ORGANIZATION = select(Organization.__table__).where(Organization.id == bindparam("p_id"))


class OrganizationRepository:
    """Organizations and their webhook secret hashes."""

    def __init__(self, session: Session):
        self.session = session

    def get(self, org_id: int) -> Row | None:
        """The organization's row (read-only; every request authenticates with it)."""
        return self.session.execute(_ORGANIZATION, {"p_id": org_id}).first()

    def add(self, org: Organization) -> Organization:
        self.session.add(org)
        self.session.flush()
        self.session.refresh(org)  # server defaults (booking rules) become visible
        return org

    def list_all(self) -> list[Organization]:
        return list(self.session.scalars(select(Organization).order_by(Organization.id)))

    def update_rules(self, org_id: int, values: dict[str, int]) -> Organization | None:
        """Change booking rules (slot/notice/horizon/buffer); None when there is no such org."""
        org = self.session.get(Organization, org_id)
        if org is None:
            return None
        for key, value in values.items():
            setattr(org, key, value)
        self.session.flush()
        return org

    def remember_signature(self, org_id: int, signature: str, *, older_than: datetime) -> bool:
        """Record an accepted HMAC signature; False if it was seen before (a replay).

        Signatures older than `older_than` are forgotten: their timestamps can no longer pass.
        """
        self.session.execute(
            WebhookSignature.__table__.delete().where(WebhookSignature.seen_at < older_than)
        )
        stmt = (
            insert(WebhookSignature)
            .values(org_id=org_id, signature=signature)
            .on_conflict_do_nothing(constraint=UQ_WEBHOOK_SIGNATURES)
            .returning(WebhookSignature.id)
        )
        return self.session.execute(stmt).first() is not None

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
