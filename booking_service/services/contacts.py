"""Contact resolution: one caller, one contact, whatever runs concurrently.

Used by every tool that identifies a caller. The database guarantees the outcome:
- phone known: one upsert statement keyed on the named constraint uq_contacts_org_phone;
- no phone, email known: select-or-insert inside a SAVEPOINT, and on a unique violation
  (SQLSTATE 23505) roll back to the savepoint and select the winner's row;
- neither: no query at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from booking_service.errors import ToolError, UniqueViolation
from booking_service.metrics import CONTACT_RESOLUTIONS
from booking_service.normalize import mask_phone, normalize_email, normalize_phone
from booking_service.repositories import ContactRow
from booking_service.unit_of_work import AbstractUnitOfWork

log = logging.getLogger(__name__)

# The path each resolution took; logged per booking and asserted by tests.
PHONE_INSERTED = "phone_inserted"
PHONE_UPDATED = "phone_updated"
PHONE_GIVEN_TO_EMAIL_CONTACT = "phone_given_to_email_contact"
EMAIL_FOUND = "email_found"
EMAIL_INSERTED = "email_inserted"
EMAIL_RACE_RECOVERED = "email_race_recovered"


@dataclass(frozen=True)
class CallerIdentity:
    """Normalised ways to identify a caller, with what could not be understood."""

    phone: str | None
    email: str | None
    name: str | None
    unreadable_phone: str | None = None
    unreadable_email: str | None = None

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


def identify_caller(
    *,
    region: str,
    name: str | None,
    phone_argument: object,
    email_argument: object,
    caller_number: object,
) -> CallerIdentity:
    """Normalise the phone (argument, else the caller's number) and email; no database."""
    phone = normalize_phone(phone_argument, region)
    unreadable_phone = None
    if phone is None and isinstance(phone_argument, str) and phone_argument.strip():
        unreadable_phone = phone_argument.strip()[:40]
    if phone is None:
        phone = normalize_phone(caller_number, region)
    email = normalize_email(email_argument)
    unreadable_email = None
    if email is None and isinstance(email_argument, str) and email_argument.strip():
        unreadable_email = email_argument.strip()[:60]
    return CallerIdentity(
        phone=phone,
        email=email,
        name=name,
        unreadable_phone=unreadable_phone,
        unreadable_email=unreadable_email,
    )


def require_identity(identity: CallerIdentity) -> None:
    """Raise ToolError (asking for a phone number or email) when nothing identifies the caller."""
    if identity.known:
        return
    problems = []
    if identity.unreadable_phone:
        problems.append(f"I could not understand the phone number {identity.unreadable_phone!r}")
    if identity.unreadable_email:
        problems.append(f"the email {identity.unreadable_email!r} does not look valid")
    prefix = (" and ".join(problems) + ". ") if problems else ""
    prefix = prefix[:1].upper() + prefix[1:]
    raise ToolError(
        f"{prefix}I need the caller's phone number or email address to make the booking."
    )


def resolve_contact(uow: AbstractUnitOfWork, org_id: int, who: CallerIdentity) -> ResolvedContact:
    """Find or create the one contact for this caller inside the caller's transaction."""
    require_identity(who)
    resolved = _by_phone(uow, org_id, who) if who.phone else _by_email(uow, org_id, who)
    CONTACT_RESOLUTIONS.labels(resolved.path).inc()
    log.info(
        "contact resolved: path=%s contact_id=%s phone=%s",
        resolved.path,
        resolved.contact.id,
        mask_phone(resolved.contact.phone),
    )
    return resolved


def _by_phone(uow: AbstractUnitOfWork, org_id: int, who: CallerIdentity) -> ResolvedContact:
    # A caller first known by email only (say, from a web call) keeps that contact when they
    # later call from a phone. The cheap existence check keeps the common case at one upsert.
    if who.email and uow.contacts.phoneless_exists_by_email(org_id, who.email):
        try:
            with uow.savepoint():
                adopted = uow.contacts.give_phone_to_phoneless(
                    org_id, who.email, who.phone, who.name
                )
        except UniqueViolation:
            # A concurrent booking gave this phone to a contact first: the upsert below wins.
            adopted = None
        if adopted is not None:
            return ResolvedContact(adopted, PHONE_GIVEN_TO_EMAIL_CONTACT)
    contact, inserted = uow.contacts.upsert_by_phone(org_id, who.phone, who.name, who.email)
    return ResolvedContact(contact, PHONE_INSERTED if inserted else PHONE_UPDATED)


def _by_email(uow: AbstractUnitOfWork, org_id: int, who: CallerIdentity) -> ResolvedContact:
    try:
        with uow.savepoint():
            found = uow.contacts.find_by_email(org_id, who.email)
            if found is not None:
                return ResolvedContact(_renamed(uow, org_id, found, who.name), EMAIL_FOUND)
            inserted = uow.contacts.insert_phoneless(org_id, who.email, who.name)
            return ResolvedContact(inserted, EMAIL_INSERTED)
    except UniqueViolation:
        # Another transaction inserted the same email between our select and insert; the
        # savepoint rollback kept our transaction usable, and its row is now visible.
        winner = uow.contacts.find_by_email(org_id, who.email)
        if winner is None:  # pragma: no cover - the winner's row cannot vanish without a delete
            raise
        return ResolvedContact(_renamed(uow, org_id, winner, who.name), EMAIL_RACE_RECOVERED)


def _renamed(
    uow: AbstractUnitOfWork, org_id: int, contact: ContactRow, name: str | None
) -> ContactRow:
    # A provided name overwrites the stored one, as the phone upsert does.
    if not name or name == contact.name:
        return contact
    uow.contacts.rename(org_id, contact.id, name)
    return ContactRow(contact.id, name, contact.phone, contact.email)
