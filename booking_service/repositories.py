"""Repositories: every query lives here. They execute, never commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased

from booking_service.models import (
    UQ_APPOINTMENTS_ORG_REFERENCE,
    UQ_CONTACTS_ORG_PHONE,
    UQ_TOOL_CALLS_ORG_TOOL_CALL,
    Appointment,
    Contact,
    Organization,
    ToolCall,
)


@dataclass(frozen=True)
class ContactRow:
    """The fields of a contact that services need, as returned by a statement."""

    id: int
    name: str | None
    phone: str | None
    email: str | None


_CONTACT_COLUMNS = (Contact.id, Contact.name, Contact.phone, Contact.email)


def _contact(row) -> ContactRow:
    return ContactRow(id=row.id, name=row.name, phone=row.phone, email=row.email)


class OrganizationRepository:
    """Organizations and their webhook secret hashes."""

    def __init__(self, session: Session):
        self.session = session

    def get(self, org_id: int) -> Organization | None:
        return self.session.get(Organization, org_id)

    def add(self, org: Organization) -> Organization:
        self.session.add(org)
        self.session.flush()
        return org

    def list_all(self) -> list[Organization]:
        return list(self.session.scalars(select(Organization).order_by(Organization.id)))

    def set_secret_hash(self, org_id: int, secret_hash: str) -> bool:
        result = self.session.execute(
            update(Organization)
            .where(Organization.id == org_id)
            .values(secret_hash=secret_hash)
            .returning(Organization.id)
        )
        return result.first() is not None


class ContactRepository:
    """Contact lookups and the race-safe writes behind contact resolution."""

    def __init__(self, session: Session):
        self.session = session

    def upsert_by_phone(
        self, org_id: int, phone: str, name: str | None, email: str | None
    ) -> tuple[ContactRow, bool]:
        """Insert or update the contact with this phone in ONE statement.

        Provided name/email overwrite stored ones; absent values (None) keep them. Returns the
        row and whether it was inserted. Keyed on the named constraint, so a missing constraint
        fails loudly instead of silently creating duplicates.
        """
        stmt = insert(Contact).values(org_id=org_id, phone=phone, name=name, email=email)
        stmt = stmt.on_conflict_do_update(
            constraint=UQ_CONTACTS_ORG_PHONE,
            set_={
                "name": func.coalesce(stmt.excluded.name, Contact.name),
                "email": func.coalesce(stmt.excluded.email, Contact.email),
                # Python-side onupdate is not applied to ON CONFLICT DO UPDATE.
                "updated_at": func.now(),
            },
        ).returning(*_CONTACT_COLUMNS, literal_column("(xmax = 0)").label("inserted"))
        row = self.session.execute(stmt).one()
        return _contact(row), bool(row.inserted)

    def phoneless_exists_by_email(self, org_id: int, email: str) -> bool:
        stmt = select(
            exists().where(
                Contact.org_id == org_id, Contact.email == email, Contact.phone.is_(None)
            )
        )
        return bool(self.session.scalar(stmt))

    def give_phone_to_phoneless(
        self, org_id: int, email: str, phone: str, name: str | None
    ) -> ContactRow | None:
        """The phone-less contact with this email gains the phone, unless the phone is taken.

        May raise a unique violation on uq_contacts_org_phone when a concurrent transaction
        gave the phone to another contact first; callers run it inside a savepoint.
        """
        other = aliased(Contact)
        stmt = (
            update(Contact)
            .where(
                Contact.org_id == org_id,
                Contact.email == email,
                Contact.phone.is_(None),
                ~exists().where(and_(other.org_id == org_id, other.phone == phone)),
            )
            .values(phone=phone, name=func.coalesce(name, Contact.name), updated_at=func.now())
            .returning(*_CONTACT_COLUMNS)
        )
        row = self.session.execute(stmt).first()
        return _contact(row) if row else None

    def find_by_email(self, org_id: int, email: str) -> ContactRow | None:
        """The contact with this email, preferring a phone-less one, then the oldest."""
        stmt = (
            select(*_CONTACT_COLUMNS)
            .where(Contact.org_id == org_id, Contact.email == email)
            .order_by(Contact.phone.is_(None).desc(), Contact.id)
            .limit(1)
        )
        row = self.session.execute(stmt).first()
        return _contact(row) if row else None

    def insert_phoneless(self, org_id: int, email: str, name: str | None) -> ContactRow:
        stmt = (
            insert(Contact)
            .values(org_id=org_id, email=email, name=name)
            .returning(*_CONTACT_COLUMNS)
        )
        return _contact(self.session.execute(stmt).one())

    def rename(self, org_id: int, contact_id: int, name: str) -> None:
        self.session.execute(
            update(Contact)
            .where(Contact.org_id == org_id, Contact.id == contact_id, Contact.name != name)
            .values(name=name, updated_at=func.now())
        )


class AppointmentRepository:
    """Appointments: inserted with a reference unique per organization."""

    def __init__(self, session: Session):
        self.session = session

    def insert(
        self,
        *,
        org_id: int,
        contact_id: int,
        reference: str,
        starts_at: datetime,
        ends_at: datetime,
        service: str | None,
        notes: str | None,
        vapi_call_id: str | None,
        tool_call_id: str | None,
    ) -> Appointment | None:
        """Insert a booked appointment; None when `reference` is already used (pick another)."""
        stmt = (
            insert(Appointment)
            .values(
                org_id=org_id,
                contact_id=contact_id,
                reference=reference,
                starts_at=starts_at,
                ends_at=ends_at,
                status="booked",
                service=service,
                notes=notes,
                vapi_call_id=vapi_call_id,
                tool_call_id=tool_call_id,
            )
            .on_conflict_do_nothing(constraint=UQ_APPOINTMENTS_ORG_REFERENCE)
            .returning(Appointment)
        )
        return self.session.scalars(stmt).first()


@dataclass(frozen=True)
class LedgerEntry:
    """What the ledger remembers of an answered tool call."""

    fingerprint: str
    answer: dict | None


class ToolCallLedger:
    """The idempotency ledger, written in the same transaction as the tool's effects."""

    def __init__(self, session: Session):
        self.session = session

    def claim(
        self,
        *,
        org_id: int,
        tool_call_id: str,
        vapi_call_id: str | None,
        tool_name: str,
        fingerprint: str,
    ) -> bool:
        """Reserve the tool call id; False when it was answered before.

        A concurrent transaction holding the same id makes this statement wait until that
        transaction ends (the unique index serialises them): then it is either answered
        (False) or rolled back (True, the claim is ours).
        """
        stmt = (
            insert(ToolCall)
            .values(
                org_id=org_id,
                tool_call_id=tool_call_id,
                vapi_call_id=vapi_call_id,
                tool_name=tool_name,
                fingerprint=fingerprint,
            )
            .on_conflict_do_nothing(constraint=UQ_TOOL_CALLS_ORG_TOOL_CALL)
            .returning(ToolCall.id)
        )
        return self.session.execute(stmt).first() is not None

    def get(self, org_id: int, tool_call_id: str) -> LedgerEntry | None:
        row = self.session.execute(
            select(ToolCall.fingerprint, ToolCall.answer).where(
                ToolCall.org_id == org_id, ToolCall.tool_call_id == tool_call_id
            )
        ).first()
        return LedgerEntry(row.fingerprint, row.answer) if row else None

    def record_answer(self, org_id: int, tool_call_id: str, answer: dict) -> None:
        self.session.execute(
            update(ToolCall)
            .where(ToolCall.org_id == org_id, ToolCall.tool_call_id == tool_call_id)
            .values(answer=answer)
        )
