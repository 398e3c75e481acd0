"""Statements for adopting an existing contacts table (see use_cases/adoption.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from booking_service.persistence.models import (
    UQ_CONTACTS_ORG_EMAIL_PHONELESS,
    UQ_CONTACTS_ORG_PHONE,
    Appointment,
    Contact,
    Organization,
)


@dataclass(frozen=True)
class StoredContact:
    """A contact as the table holds it before adoption (phone and email not yet normalised)."""

    id: int
    org_id: int
    name: str | None
    phone: str | None
    email: str | None
    updated_at: datetime | None


class AdoptionRepository:
    """Statements for adopting an existing contacts table (see use_cases/adoption.py)."""

    def __init__(self, session: Session):
        self.session = session

    def lock_for_adoption(self) -> None:
        # Readers continue; writers wait until the merge and the new constraint are committed.
        self.session.execute(text("LOCK TABLE contacts, appointments IN SHARE ROW EXCLUSIVE MODE"))

    def org_regions(self) -> dict[int, str]:
        rows = self.session.execute(select(Organization.id, Organization.phone_region))
        return {row.id: row.phone_region for row in rows}

    def all_contacts(self) -> list[StoredContact]:
        rows = self.session.execute(
            select(
                Contact.id,
                Contact.org_id,
                Contact.name,
                Contact.phone,
                Contact.email,
                Contact.updated_at,
            ).order_by(Contact.id)
        )
        return [StoredContact(*row) for row in rows]

    def set_phone(self, contact_id: int, phone: str | None) -> None:
        self.session.execute(update(Contact).where(Contact.id == contact_id).values(phone=phone))

    def set_contact(self, contact_id: int, *, name: str | None, email: str | None) -> None:
        self.session.execute(
            update(Contact)
            .where(Contact.id == contact_id)
            .values(name=name, email=email, updated_at=func.now())
        )

    def move_appointments(self, org_id: int, from_ids: list[int], to_id: int) -> int:
        result = self.session.execute(
            update(Appointment)
            .where(Appointment.org_id == org_id, Appointment.contact_id.in_(from_ids))
            .values(contact_id=to_id)
        )
        return result.rowcount  # type: ignore[attr-defined]  # a CursorResult for an UPDATE

    def delete_contacts(self, ids: list[int]) -> None:
        self.session.execute(delete(Contact).where(Contact.id.in_(ids)))

    def lowercase_emails(self) -> None:
        self.session.execute(
            update(Contact)
            .where(
                Contact.email.is_not(None), Contact.email != func.lower(func.trim(Contact.email))
            )
            .values(email=func.lower(func.trim(Contact.email)))
        )

    def add_missing_contact_constraints(self) -> list[str]:
        """Create uq_contacts_org_phone and the phone-less email index where missing."""
        added = []
        exists_constraint = self.session.execute(
            text("SELECT 1 FROM pg_constraint WHERE conname = :n"), {"n": UQ_CONTACTS_ORG_PHONE}
        ).first()
        if not exists_constraint:
            # A plain index of that name would stop the constraint from being created.
            self.session.execute(text(f"DROP INDEX IF EXISTS {UQ_CONTACTS_ORG_PHONE}"))
            self.session.execute(
                text(
                    f"ALTER TABLE contacts ADD CONSTRAINT {UQ_CONTACTS_ORG_PHONE} "
                    "UNIQUE (org_id, phone)"
                )
            )
            added.append(UQ_CONTACTS_ORG_PHONE)
        exists_index = self.session.execute(
            text("SELECT 1 FROM pg_class WHERE relname = :n"),
            {"n": UQ_CONTACTS_ORG_EMAIL_PHONELESS},
        ).first()
        if not exists_index:
            self.session.execute(
                text(
                    f"CREATE UNIQUE INDEX {UQ_CONTACTS_ORG_EMAIL_PHONELESS} "
                    "ON contacts (org_id, email) WHERE phone IS NULL"
                )
            )
            added.append(UQ_CONTACTS_ORG_EMAIL_PHONELESS)
        return added
