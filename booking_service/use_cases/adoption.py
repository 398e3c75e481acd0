"""Adopting an existing database whose contacts were never deduplicated.

The situation behind the original incident: a contacts table with un-normalised phone numbers,
duplicate contacts and no uq_contacts_org_phone. `adopt_contacts` fixes it in ONE transaction
that first locks contacts and appointments against writers (SHARE ROW EXCLUSIVE: reads go on,
inserts and updates wait), so no duplicate can sneak in between the merge and the constraint:

1. normalise phones to E.164 with each organization's region, and emails to lower case;
2. merge contacts that share a phone (or, when phone-less, an email): the oldest survives,
   keeps the most complete fields, and receives every appointment of the others;
3. add uq_contacts_org_phone (and the phone-less email index) if missing.

Everything merged is logged and returned, so the operator has a record.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from booking_service.domain.normalize import mask_phone, normalize_phone
from booking_service.persistence.unit_of_work import AbstractUnitOfWork

log = logging.getLogger(__name__)


@dataclass
class AdoptionReport:
    """What adoption changed."""

    normalized_phones: int = 0
    normalized_emails: int = 0
    merged: list[dict] = field(default_factory=list)
    unparseable_phones: list[int] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    appointments_moved: int = 0

    def as_json(self) -> dict:
        return {
            "normalized_phones": self.normalized_phones,
            "normalized_emails": self.normalized_emails,
            "merged": self.merged,
            "appointments_moved": self.appointments_moved,
            "unparseable_phones": self.unparseable_phones,
            "added": self.added,
        }


def _completeness(row) -> tuple:
    # More filled-in fields first, then the most recently updated, then the oldest id.
    filled = sum(1 for v in (row.name, row.email) if v)
    return (-filled, -(row.updated_at.timestamp() if row.updated_at else 0), row.id)


def _merge_group(uow: AbstractUnitOfWork, rows: list, key: str, report: AdoptionReport) -> None:
    survivor = min(rows, key=lambda r: r.id)
    others = [r for r in rows if r.id != survivor.id]
    best = sorted(rows, key=_completeness)
    name = next((r.name for r in best if r.name), None)
    email = next((r.email for r in best if r.email), None)
    moved = uow.adoption.move_appointments(survivor.org_id, [r.id for r in others], survivor.id)
    uow.adoption.delete_contacts([r.id for r in others])
    uow.adoption.set_contact(survivor.id, name=name, email=email)
    report.appointments_moved += moved
    report.merged.append(
        {
            "org_id": survivor.org_id,
            "survivor": survivor.id,
            "merged": [r.id for r in others],
            "key": key,
            "appointments_moved": moved,
        }
    )
    log.info(
        "adopt: merged contacts %s into %s (%s), %d appointments moved",
        [r.id for r in others],
        survivor.id,
        key,
        moved,
    )


def adopt_contacts(
    uow: AbstractUnitOfWork, *, before_commit: Callable[[], None] | None = None
) -> AdoptionReport:
    """Normalise, merge and constrain contacts in one locked transaction; return the report.

    `before_commit` runs while the lock is still held (tests use it to prove writers wait).
    """
    report = AdoptionReport()
    with uow:
        uow.adoption.lock_for_adoption()
        regions = uow.adoption.org_regions()
        rows = uow.adoption.all_contacts()
        by_phone: dict[tuple[int, str], list] = defaultdict(list)
        by_email: dict[tuple[int, str], list] = defaultdict(list)
        for row in rows:
            phone = row.phone
            if phone is not None:
                normalized = normalize_phone(phone, regions.get(row.org_id, "US"))
                if normalized is None:
                    report.unparseable_phones.append(row.id)
                elif normalized != phone:
                    report.normalized_phones += 1
                    phone = normalized
            # Exactly the SQL expression lowercase_emails() writes back (btrim strips spaces
            # only), so that two spellings merged here can never collide in the index later.
            email = row.email.strip(" ").lower() if row.email else None
            if row.email and email != row.email:
                report.normalized_emails += 1
            row = replace(row, phone=phone, email=email)
            if row.phone is not None:
                by_phone[(row.org_id, row.phone)].append(row)
            elif row.email:
                by_email[(row.org_id, row.email)].append(row)
        # The constraint does not exist yet (and writers are locked out), so survivors can take
        # their normalised number once the duplicates are gone.
        for (_, phone), group in by_phone.items():
            if len(group) > 1:
                _merge_group(uow, group, f"phone {mask_phone(phone)}", report)
            uow.adoption.set_phone(min(r.id for r in group), phone)
        for group in by_email.values():
            if len(group) > 1:
                _merge_group(uow, group, "email", report)
        uow.adoption.lowercase_emails()
        report.added = uow.adoption.add_missing_contact_constraints()
        if before_commit is not None:
            before_commit()
        uow.commit()
    return report
