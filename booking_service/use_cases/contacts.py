"""Contact resolution: one caller, one contact, whatever runs concurrently.

Used by every tool that books. The database guarantees the outcome:
- phone known: one upsert statement keyed on the named constraint uq_contacts_org_phone;
- no phone, email known: select-or-insert of a phone-less contact inside a SAVEPOINT, and on a
  unique violation (SQLSTATE 23505) roll back to the savepoint and select the winner's row;
- neither: no query at all.

What a caller names is a claim, never proof, so contacts never merge because something was
named: a booking with a phone never touches an email-only contact, an email never attaches to
a contact that has a phone, and a contact's stored name and email change only when its own
verified caller books for their own number (anyone else's booking only fills blanks).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from booking_service.domain.errors import UniqueViolation
from booking_service.domain.normalize import mask_phone
from booking_service.persistence.repositories.contacts import ContactRow
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.runtime.metrics import CONTACT_RESOLUTIONS

log = logging.getLogger(__name__)

# The path each resolution took; logged per booking and asserted by tests.
PHONE_INSERTED = "phone_inserted"
PHONE_UPDATED = "phone_updated"  # the contact existed (its fields change only for its owner)
EMAIL_FOUND = "email_found"
EMAIL_INSERTED = "email_inserted"
EMAIL_RACE_RECOVERED = "email_race_recovered"


@dataclass(frozen=True)
class CallerIdentity:
    """Whom a booking is for: a normalised phone, else an email, and the name given."""

    phone: str | None
    email: str | None
    name: str | None

    @property
    def known(self) -> bool:
        return bool(self.phone or self.email)


@dataclass(frozen=True)
class ResolvedContact:
    """The contact a tool call acts for, and how it was found."""

    contact: ContactRow
    path: str

    @property
    def is_new(self) -> bool:
        """Created by this transaction, so it cannot have appointments yet."""
        return self.path in (PHONE_INSERTED, EMAIL_INSERTED)


def resolve_contact(
    uow: AbstractUnitOfWork, org_id: int, who: CallerIdentity, *, own_number: bool
) -> ResolvedContact:
    """Find or create the one contact for this caller inside the caller's transaction.

    `own_number`: the verified caller books for the number they call from, so the contact's
    name and email may take the ones given now. Anybody else's booking creates the contact if
    it is new and otherwise leaves it as it is.
    """
    if who.phone:
        contact, inserted = uow.contacts.upsert_by_phone(
            org_id, who.phone, who.name, who.email, owner=own_number
        )
        resolved = ResolvedContact(contact, PHONE_INSERTED if inserted else PHONE_UPDATED)
    elif who.email:
        resolved = _by_email(uow, org_id, who.email, who.name)
    else:  # pragma: no cover - front ends refuse an identity with neither
        raise ValueError("a contact needs a phone or an email")
    CONTACT_RESOLUTIONS.labels(resolved.path).inc()
    log.info(
        "contact resolved: path=%s contact_id=%s phone=%s",
        resolved.path,
        resolved.contact.id,
        mask_phone(resolved.contact.phone),
    )
    return resolved


def _by_email(
    uow: AbstractUnitOfWork, org_id: int, email: str, name: str | None
) -> ResolvedContact:
    # Only phone-less contacts: a contact with a phone is reached through its phone, never
    # because somebody typed its email.
    try:
        with uow.savepoint():
            found = uow.contacts.find_phoneless_by_email(org_id, email)
            if found is not None:
                return ResolvedContact(_named(uow, org_id, found, name), EMAIL_FOUND)
            inserted = uow.contacts.insert_phoneless(org_id, email, name)
            return ResolvedContact(inserted, EMAIL_INSERTED)
    except UniqueViolation:
        # Another transaction inserted the same email between our select and insert; the
        # savepoint rollback kept our transaction usable, and its row is now visible.
        winner = uow.contacts.find_phoneless_by_email(org_id, email)
        if winner is None:  # pragma: no cover - the winner's row cannot vanish without a delete
            raise
        return ResolvedContact(_named(uow, org_id, winner, name), EMAIL_RACE_RECOVERED)


def _named(uow: AbstractUnitOfWork, org_id: int, contact: ContactRow, name: str | None):
    # An email is a claim, so an email-only contact keeps its first name; one that has none
    # takes the name given, as a new contact would.
    if contact.name is not None or not name:
        return contact
    uow.contacts.fill_name(org_id, contact.id, name)
    return ContactRow(contact.id, name, contact.phone, contact.email)
