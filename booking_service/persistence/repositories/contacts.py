"""Contacts: the race-safe upsert on uq_contacts_org_phone and the phone-less email path."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    Boolean,
    bindparam,
    case,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from booking_service.persistence.db import table
from booking_service.persistence.models import (
    UQ_CONTACTS_ORG_PHONE,
    Contact,
)
from booking_service.persistence.repositories.driver import HotStatement


@dataclass(frozen=True)
class ContactRow:
    """The fields of a contact that use cases need, as returned by a statement."""

    id: int
    name: str | None
    phone: str | None
    email: str | None


_CONTACT_COLUMNS = (Contact.id, Contact.name, Contact.phone, Contact.email)


def _contact(row) -> ContactRow:
    return ContactRow(id=row.id, name=row.name, phone=row.phone, email=row.email)


# The statements every booking runs are built once (building one costs about as much as running
# it); the values are bound per call. Bind names must differ from the column names.
_contacts = table(Contact)
_new_contact = insert(_contacts).values(
    org_id=bindparam("p_org"),
    phone=bindparam("p_phone"),
    name=bindparam("p_name"),
    email=bindparam("p_email"),
)
# Only the contact's own verified caller changes its name and email; anyone else's booking
# for this number only gives a nameless contact a name. A contact's email (where messages may
# go) is never written by anybody else, not even into a new contact: the booking keeps the
# email it was made with. DO UPDATE runs either way: it locks the row until commit, so one
# booking decision per contact is made at a time.
_OWNER = bindparam("p_owner", type_=Boolean)
_UPSERT_CONTACT = _new_contact.on_conflict_do_update(
    constraint=UQ_CONTACTS_ORG_PHONE,
    set_={
        "name": case(
            (_OWNER, func.coalesce(_new_contact.excluded.name, _contacts.c.name)),
            else_=func.coalesce(_contacts.c.name, _new_contact.excluded.name),
        ),
        "email": case(
            (_OWNER, func.coalesce(_new_contact.excluded.email, _contacts.c.email)),
            else_=_contacts.c.email,
        ),
        # Python-side onupdate is not applied to ON CONFLICT DO UPDATE.
        "updated_at": case((_OWNER, func.now()), else_=_contacts.c.updated_at),
    },
).returning(
    _contacts.c.id,
    _contacts.c.name,
    _contacts.c.phone,
    _contacts.c.email,
    literal_column("(xmax = 0)").label("inserted"),
)
_UPSERT_CONTACT_HOT = HotStatement(_UPSERT_CONTACT)
# Who a text's number is (every SMS reply, #29), on the driver (#30).
_BY_PHONE = HotStatement(
    select(*_CONTACT_COLUMNS).where(
        Contact.org_id == bindparam("p_org"), Contact.phone == bindparam("p_phone")
    )
)


class ContactRepository:
    """Contact lookups and the race-safe writes behind contact resolution."""

    def __init__(self, session: Session):
        self.session = session

    def upsert_by_phone(
        self, org_id: int, phone: str, name: str | None, email: str | None, *, owner: bool
    ) -> tuple[ContactRow, bool]:
        """Insert the contact with this phone, or lock the existing one, in ONE statement.

        `owner`: its own verified caller books for their own number, so the name and email
        given replace the stored ones (absent values never erase stored ones). Anybody else's
        booking gives a new or nameless contact the name given, and never an email. Returns
        the row and whether it was inserted. Keyed on the named constraint, so a missing
        constraint fails loudly instead of silently creating duplicates.
        """
        values = {
            "p_org": org_id,
            "p_phone": phone,
            "p_name": name,
            "p_email": email if owner else None,
            "p_owner": owner,
        }
        row = _UPSERT_CONTACT_HOT.execute(self.session, values).one()
        return _contact(row), bool(row.inserted)

    def find_by_phone(self, org_id: int, phone: str) -> ContactRow | None:
        row = _BY_PHONE.execute(self.session, {"p_org": org_id, "p_phone": phone}).first()
        return _contact(row) if row else None

    def find_phoneless_by_email(self, org_id: int, email: str) -> ContactRow | None:
        row = self.session.execute(
            select(*_CONTACT_COLUMNS).where(
                Contact.org_id == org_id, Contact.email == email, Contact.phone.is_(None)
            )
        ).first()
        return _contact(row) if row else None

    def lock(self, org_id: int, contact_id: int) -> None:
        """Hold the contact's row until commit: one booking decision per caller at a time."""
        self.session.execute(
            select(Contact.id)
            .where(Contact.org_id == org_id, Contact.id == contact_id)
            .with_for_update()
        )

    def fill_name(self, org_id: int, contact_id: int, name: str) -> None:
        """Give a contact that has no name this one (a stored name is never replaced)."""
        self.session.execute(
            update(Contact)
            .where(Contact.org_id == org_id, Contact.id == contact_id, Contact.name.is_(None))
            .values(name=name, updated_at=func.now())
        )

    def insert_phoneless(self, org_id: int, email: str, name: str | None) -> ContactRow:
        stmt = (
            insert(Contact)
            .values(org_id=org_id, email=email, name=name)
            .returning(*_CONTACT_COLUMNS)
        )
        return _contact(self.session.execute(stmt).one())
