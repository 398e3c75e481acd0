"""uow.waitlist: callers waiting for a time, the times freed for them, and the offers texted
of those times (#29). Every statement is scoped to the organization.

The worker takes one freed time at a time (FOR UPDATE SKIP LOCKED), so two workers never
offer the same time twice; a caller's YES locks the offer's row, so two YES from one number
(a retry, a double tap) book at most once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class EntryRow:
    """A waitlist entry, with its caller's number."""

    id: int
    org_id: int
    contact_id: int
    phone: str | None
    name: str | None
    service: str | None
    duration_minutes: int
    window_start: datetime
    window_end: datetime
    part_of_day: str
    status: str
    created_at: datetime


@dataclass(frozen=True)
class OpeningRow:
    """A freed time: [starts_at, ends_at) with `resource`, freed by `appointment_id`."""

    id: int
    org_id: int
    appointment_id: int
    resource: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class OfferRow:
    """An offer of a freed time to one entry, with what a YES needs to book it."""

    id: int
    org_id: int
    opening_id: int
    entry_id: int
    starts_at: datetime
    ends_at: datetime
    resource: str
    expires_at: datetime
    status: str
    entry_status: str
    name: str | None
    service: str | None
    duration_minutes: int
    appointment_id: int | None  # what a taken offer booked


_ENTRY_COLUMNS = """
    e.id, e.org_id, e.contact_id, c.phone, e.name, e.service, e.duration_minutes,
    e.window_start, e.window_end, e.part_of_day, e.status, e.created_at
"""


class WaitlistRepository:
    """Entries, freed times and offers."""

    def __init__(self, session: Session):
        self.session = session

    # --- joining -----------------------------------------------------------------------------

    def active_count(self, org_id: int, contact_id: int) -> int:
        """How many entries the contact has that still wait (waiting or offered)."""
        return self.session.execute(
            text(
                "SELECT count(*) FROM waitlist_entries WHERE org_id = :org "
                "AND contact_id = :contact AND status IN ('waiting', 'offered')"
            ),
            {"org": org_id, "contact": contact_id},
        ).scalar_one()

    def add(
        self,
        org_id: int,
        contact_id: int,
        *,
        name: str | None,
        service: str | None,
        duration_minutes: int,
        window_start: datetime,
        window_end: datetime,
        part_of_day: str,
    ) -> EntryRow:
        row = self.session.execute(
            text(
                f"""
                WITH e AS (
                    INSERT INTO waitlist_entries (org_id, contact_id, name, service,
                        duration_minutes, window_start, window_end, part_of_day)
                    VALUES (:org, :contact, :name, :service, :minutes, :ws, :we, :part)
                    RETURNING *
                )
                SELECT {_ENTRY_COLUMNS} FROM e
                  JOIN contacts c ON c.org_id = e.org_id AND c.id = e.contact_id
                """  # noqa: S608 - this module's constants only
            ),
            {
                "org": org_id,
                "contact": contact_id,
                "name": name,
                "service": service,
                "minutes": duration_minutes,
                "ws": window_start,
                "we": window_end,
                "part": part_of_day,
            },
        ).one()
        return EntryRow(**row._mapping)

    # --- freed times (in the change's transaction) -------------------------------------------

    def add_opening(
        self,
        org_id: int,
        appointment_id: int,
        resource: str,
        starts_at: datetime,
        ends_at: datetime,
    ) -> None:
        """Record a freed time, only when somebody of the organization waits for that moment
        (most cancellations free a time nobody is waiting for: no row)."""
        self.session.execute(
            text(
                """
                INSERT INTO waitlist_openings (org_id, appointment_id, resource, starts_at,
                                               ends_at)
                SELECT :org, :appointment, :resource, :starts, :ends
                 WHERE EXISTS (SELECT 1 FROM waitlist_entries e
                                WHERE e.org_id = :org AND e.status IN ('waiting', 'offered')
                                  AND e.window_start <= :starts AND e.window_end > :starts)
                """
            ),
            {
                "org": org_id,
                "appointment": appointment_id,
                "resource": resource,
                "starts": starts_at,
                "ends": ends_at,
            },
        )

    # --- the worker --------------------------------------------------------------------------

    def expire(self, now: datetime) -> tuple[int, int]:
        """Offers past their 15 minutes lapse (their entries wait again); entries whose window
        has passed expire. Returns (offers lapsed, entries expired)."""
        lapsed = self.session.execute(
            text(
                """
                WITH o AS (
                    UPDATE waitlist_offers SET status = 'lapsed'
                     WHERE status = 'open' AND expires_at <= :now
                    RETURNING entry_id
                )
                UPDATE waitlist_entries e SET status = 'waiting', updated_at = now()
                  FROM o WHERE e.id = o.entry_id AND e.status = 'offered'
                """
            ),
            {"now": now},
        ).rowcount  # type: ignore[attr-defined]
        expired = self.session.execute(
            text(
                "UPDATE waitlist_entries SET status = 'expired', updated_at = now() "
                "WHERE status IN ('waiting', 'offered') AND window_end <= :now"
            ),
            {"now": now},
        ).rowcount  # type: ignore[attr-defined]
        return lapsed, expired

    def open_openings(self, limit: int = 100) -> list[int]:
        """The ids of freed times still to be offered or waiting on an offer, oldest first."""
        rows = self.session.execute(
            text("SELECT id FROM waitlist_openings WHERE done_at IS NULL ORDER BY id LIMIT :n"),
            {"n": limit},
        )
        return [r.id for r in rows]

    def claim_opening(self, opening_id: int) -> OpeningRow | None:
        """The freed time, row-locked, unless another worker holds it or it is done."""
        row = self.session.execute(
            text(
                "SELECT id, org_id, appointment_id, resource, starts_at, ends_at "
                "FROM waitlist_openings WHERE id = :id AND done_at IS NULL "
                "FOR UPDATE SKIP LOCKED"
            ),
            {"id": opening_id},
        ).first()
        return OpeningRow(**row._mapping) if row is not None else None

    def has_open_offer(self, opening_id: int) -> bool:
        return self.session.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM waitlist_offers "
                "WHERE opening_id = :id AND status = 'open')"
            ),
            {"id": opening_id},
        ).scalar_one()

    def candidates(self, opening: OpeningRow) -> list[EntryRow]:
        """The entries the freed time fits (their window holds its start, their length fits in
        it), not offered it before and not opted out, in the order they joined: waiting ones,
        and offered ones (busy with another offer now, they may want this one after)."""
        rows = self.session.execute(
            text(
                f"""
                SELECT {_ENTRY_COLUMNS}
                  FROM waitlist_entries e
                  JOIN contacts c ON c.org_id = e.org_id AND c.id = e.contact_id
                 WHERE e.org_id = :org AND e.status IN ('waiting', 'offered')
                   AND e.window_start <= :starts AND e.window_end > :starts
                   AND :starts + make_interval(mins => e.duration_minutes) <= :ends
                   AND c.phone IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM waitlist_offers o
                                    WHERE o.opening_id = :opening AND o.entry_id = e.id)
                   AND NOT EXISTS (SELECT 1 FROM sms_opt_outs x
                                    WHERE x.org_id = e.org_id AND x.phone = c.phone)
                 ORDER BY e.id
                 LIMIT 50
                """  # noqa: S608 - this module's constants only
            ),
            {
                "org": opening.org_id,
                "starts": opening.starts_at,
                "ends": opening.ends_at,
                "opening": opening.id,
            },
        )
        return [EntryRow(**r._mapping) for r in rows]

    def add_offer(
        self, opening: OpeningRow, entry: EntryRow, now: datetime, expires_at: datetime
    ) -> int:
        """Offer the freed time to the entry (which is then `offered`); returns the offer id."""
        self.session.execute(
            text(
                "UPDATE waitlist_entries SET status = 'offered', updated_at = now() "
                "WHERE id = :id AND org_id = :org"
            ),
            {"id": entry.id, "org": entry.org_id},
        )
        return self.session.execute(
            text(
                """
                INSERT INTO waitlist_offers (org_id, opening_id, entry_id, starts_at, ends_at,
                                             resource, offered_at, expires_at)
                VALUES (:org, :opening, :entry, :starts, :ends, :resource, :now, :expires)
                RETURNING id
                """
            ),
            {
                "org": opening.org_id,
                "opening": opening.id,
                "entry": entry.id,
                "starts": opening.starts_at,
                "ends": opening.starts_at + timedelta(minutes=entry.duration_minutes),
                "resource": opening.resource,
                "now": now,
                "expires": expires_at,
            },
        ).scalar_one()

    def close_opening(self, opening_id: int) -> None:
        self.session.execute(
            text("UPDATE waitlist_openings SET done_at = now() WHERE id = :id"),
            {"id": opening_id},
        )

    # --- a YES -------------------------------------------------------------------------------

    def latest_offer(self, org_id: int, phone: str) -> OfferRow | None:
        """The newest offer made to this number, row-locked (a second YES waits for the
        first one's transaction and then sees what it did)."""
        row = self.session.execute(
            text(
                """
                SELECT o.id, o.org_id, o.opening_id, o.entry_id, o.starts_at, o.ends_at,
                       o.resource, o.expires_at, o.status, e.status AS entry_status, e.name,
                       e.service, e.duration_minutes, o.appointment_id
                  FROM waitlist_offers o
                  JOIN waitlist_entries e ON e.id = o.entry_id
                  JOIN contacts c ON c.org_id = e.org_id AND c.id = e.contact_id
                 WHERE o.org_id = :org AND c.phone = :phone
                 ORDER BY o.id DESC
                 LIMIT 1
                   FOR UPDATE OF o, e
                """
            ),
            {"org": org_id, "phone": phone},
        ).first()
        return OfferRow(**row._mapping) if row is not None else None

    def finish_offer(self, offer: OfferRow, status: str, appointment_id: int | None) -> None:
        """Record a YES's outcome: `taken` (the entry is booked, the freed time done) or
        `gone` (the entry waits again unless its window has passed)."""
        self.session.execute(
            text("UPDATE waitlist_offers SET status = :s, appointment_id = :a WHERE id = :id"),
            {"s": status, "a": appointment_id, "id": offer.id},
        )
        entry_status = "booked" if status == "taken" else "waiting"
        self.session.execute(
            text(
                "UPDATE waitlist_entries SET status = CASE WHEN :s = 'waiting' AND "
                "window_end <= now() THEN 'expired' ELSE :s END, appointment_id = :a, "
                "updated_at = now() WHERE id = :id AND status IN ('waiting', 'offered')"
            ),
            {"s": entry_status, "a": appointment_id, "id": offer.entry_id},
        )
        if status == "taken":
            self.close_opening(offer.opening_id)

    # --- the owner's view --------------------------------------------------------------------

    def listing(self, org_id: int) -> list[EntryRow]:
        """Every entry of the organization, in the order they joined."""
        rows = self.session.execute(
            text(
                f"""
                SELECT {_ENTRY_COLUMNS}
                  FROM waitlist_entries e
                  JOIN contacts c ON c.org_id = e.org_id AND c.id = e.contact_id
                 WHERE e.org_id = :org
                 ORDER BY e.id
                """  # noqa: S608 - this module's constants only
            ),
            {"org": org_id},
        )
        return [EntryRow(**r._mapping) for r in rows]
