"""The waitlist (#29): a verified caller waits for a time; a cancellation or a move frees one;
the worker texts the first in line; their YES books it through the normal booking path.

Offered first-come, not held. A hold would be a row the exclusion constraint sees for 15
minutes: every other caller (on the phone now, ready to book) would be refused that time for
the sake of a text that may never be read, and a hold left by a crash would need sweeping. So
the offer reserves nothing; the YES books through `book_appointment` like any booking and the
exclusion constraint decides. If someone booked the time meanwhile, the YES is told it is gone
and the entry keeps its place. Offers go to one caller at a time, in the order they joined: a
lapsed offer (no YES within 15 minutes) passes the time to the next in line.

Quiet hours hold offers back (a 15-minute offer at 3 AM helps nobody); opt-outs, the allowed
countries and the organization's SMS settings apply as to any text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from booking_service.domain import caller_messages, outbox, recipients, sms_replies
from booking_service.domain.errors import (
    CalendarUnavailable,
    InputError,
    NotFound,
    Refusal,
    StartRefused,
    WaitlistFull,
    WaitlistNeedsVerifiedCaller,
)
from booking_service.domain.normalize import mask_phone
from booking_service.domain.times import ParsedStart, utc_now
from booking_service.persistence.repositories.waitlist import EntryRow, OpeningRow
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases.booking import BookingRequest, book_appointment
from booking_service.use_cases.catalogue import choose_resources, choose_service, load_catalogue
from booking_service.use_cases.contacts import CallerIdentity, resolve_contact
from booking_service.use_cases.openings import openings_at
from booking_service.use_cases.orgs import OrgInfo, org_in

log = logging.getLogger(__name__)

OFFER_MINUTES = 15
MAX_ENTRIES_PER_CALLER = 3
# Local hours [from, until) of each part of the day a caller may prefer.
PARTS_OF_DAY: dict[str, tuple[time, time]] = {
    "morning": (time(0, 0), time(12, 0)),
    "afternoon": (time(12, 0), time(17, 0)),
    "evening": (time(17, 0), time(23, 59, 59)),
}


class WaitlistInputError(InputError):
    """A waitlist request is malformed; the message says which and how."""


@dataclass(frozen=True)
class JoinRequest:
    """Who waits for what: a service or a length, a window of local time, a part of day."""

    name: str | None
    service: str | None
    duration_minutes: int | None
    window_start: datetime
    window_end: datetime
    part_of_day: str = "any"


@dataclass(frozen=True)
class Joined:
    """The entry made, as the caller hears it."""

    entry_id: int
    window_start: datetime
    window_end: datetime
    part_of_day: str
    position: int  # how many entries of the caller now wait, this one included


def fits_part_of_day(part: str, start: datetime, zone: ZoneInfo) -> bool:
    """Whether a start (in the business's zone) falls in the preferred part of the day."""
    if part not in PARTS_OF_DAY:
        return True
    begins, ends = PARTS_OF_DAY[part]
    return begins <= start.astimezone(zone).time() < ends


def join_waitlist(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    verified_number: str | None,
    request: JoinRequest,
    *,
    now: datetime,
) -> Joined:
    """Put the verified caller on the waitlist (a step: not committed).

    Only the verified caller ID of a phone call may join: offers are texted, and a claimed
    number would let anyone subscribe a stranger. WaitlistFull past 3 waiting entries."""
    if verified_number is None:
        raise WaitlistNeedsVerifiedCaller()
    if request.part_of_day not in ("any", *PARTS_OF_DAY):
        raise WaitlistInputError("part_of_day", "must be morning, afternoon, evening or any")
    if request.window_end <= request.window_start:
        raise WaitlistInputError("window", "must end after it starts")
    if request.window_end <= now:
        raise WaitlistInputError("window", "is already over")
    if request.window_end - request.window_start > timedelta(days=org.rules.horizon_days + 1):
        raise WaitlistInputError("window", f"may span at most {org.rules.horizon_days} days")
    catalogue = load_catalogue(uow, org)
    choice = choose_service(catalogue, org, request.service, request.duration_minutes)
    if not 5 <= choice.minutes <= 1440:
        raise WaitlistInputError("duration_minutes", "must be between 5 and 1440")
    resolved = resolve_contact(
        uow, org.id, CallerIdentity(verified_number, None, request.name), own_number=True
    )
    # The phone upsert holds the contact's row: two joins of one caller count one after the
    # other, so nobody gets a fourth entry.
    waiting = uow.waitlist.active_count(org.id, resolved.contact.id)
    if waiting >= MAX_ENTRIES_PER_CALLER:
        raise WaitlistFull(MAX_ENTRIES_PER_CALLER)
    entry = uow.waitlist.add(
        org.id,
        resolved.contact.id,
        name=request.name,
        service=choice.name,
        duration_minutes=choice.minutes,
        window_start=max(request.window_start, now),
        window_end=request.window_end,
        part_of_day=request.part_of_day,
    )
    log.info("waitlist entry %s for %s", entry.id, mask_phone(verified_number))
    return Joined(entry.id, entry.window_start, entry.window_end, entry.part_of_day, waiting + 1)


# --- the worker: offering freed times --------------------------------------------------------


class WaitlistOffers:
    """The worker's waitlist round: lapse old offers, expire old entries, offer freed times.
    `clock` decides what is past (tests move it)."""

    def __init__(
        self,
        uow_factory: Callable[[], AbstractUnitOfWork],
        *,
        clock: Callable[[], datetime] = utc_now,
    ):
        self._uow = uow_factory
        self._clock = clock

    def offer_round(self, stop: Callable[[], bool] = lambda: False) -> int:
        """One round; returns how many offers were made."""
        now = self._clock()
        with self._uow() as uow:
            lapsed, expired = uow.waitlist.expire(now)
            uow.commit()
        if lapsed or expired:
            log.info("waitlist: %d offers lapsed, %d entries expired", lapsed, expired)
        with self._uow() as uow:
            opening_ids = uow.waitlist.open_openings()
        offered = 0
        for opening_id in opening_ids:
            if stop():
                break
            offered += self._offer_one(opening_id, now)
        return offered

    def _offer_one(self, opening_id: int, now: datetime) -> int:
        """Offer one freed time to the first waiting entry it fits (one transaction)."""
        with self._uow() as uow:
            opening = uow.waitlist.claim_opening(opening_id)
            if opening is None or uow.waitlist.has_open_offer(opening_id):
                return 0  # another worker has it, or an offer is still open
            org = org_in(uow, opening.org_id)
            row = uow.organizations.get(opening.org_id)
            settings = uow.notifications.settings(opening.org_id)
            if (
                org is None
                or row is None
                or opening.starts_at <= now
                or settings is None
                or not settings.sms_enabled
            ):
                uow.waitlist.close_opening(opening_id)
                uow.commit()
                return 0
            zone = org.zone
            quiet = (
                (row.quiet_from, row.quiet_until)
                if row.quiet_from is not None and row.quiet_until is not None
                else None
            )
            if quiet is not None and caller_messages.in_quiet(now, quiet, zone):
                return 0  # held back until the quiet hours end (if the time is still ahead)
            countries = recipients.sms_countries(settings.sms_countries, org.phone_region)
            busy_elsewhere = False
            for entry in uow.waitlist.candidates(opening):
                if not fits_part_of_day(entry.part_of_day, opening.starts_at, zone):
                    continue
                if not recipients.may_text(entry.phone, countries):
                    continue
                if not self._still_free(uow, org, opening, entry, now):
                    continue
                if entry.status == "offered":
                    # Answering another offer now; keep this time for them (or whoever is next)
                    # until that offer is taken or lapses.
                    busy_elsewhere = True
                    continue
                self._offer(uow, org, opening, entry, now)
                uow.commit()
                return 1
            if busy_elsewhere:
                return 0
            # Nobody (left) it fits, or it is no longer free: done with it.
            uow.waitlist.close_opening(opening_id)
            uow.commit()
            return 0

    @staticmethod
    def _still_free(
        uow: AbstractUnitOfWork, org: OrgInfo, opening: OpeningRow, entry: EntryRow, now: datetime
    ) -> bool:
        """Whether the entry's length is bookable at the freed start with its resource, by the
        same rules as a booking (hours, notice, busy calendars, other bookings)."""
        try:
            with uow.savepoint():
                resources = choose_resources(load_catalogue(uow, org), opening.resource)
                free = openings_at(
                    uow,
                    org,
                    resources,
                    ParsedStart(opening.starts_at),
                    timedelta(minutes=entry.duration_minutes),
                    now,
                )
        except Refusal:
            return False
        return bool(free.resources)

    @staticmethod
    def _offer(
        uow: AbstractUnitOfWork, org: OrgInfo, opening: OpeningRow, entry: EntryRow, now: datetime
    ) -> None:
        assert entry.phone is not None  # candidates() has only entries with a number
        expires = now + timedelta(minutes=OFFER_MINUTES)
        uow.waitlist.add_offer(opening, entry, now, expires)
        when = sms_replies.short_when(opening.starts_at, org.zone)
        body = (
            f"{sms_replies.waitlist_offer(org.name, when, opening.resource, OFFER_MINUTES)} "
            f"{caller_messages.STOP_LINE}"
        )
        uow.notifications.add(
            org.id,
            opening.appointment_id,
            [
                caller_messages.PlannedMessage(
                    caller_messages.WAITLIST_OFFER, caller_messages.SMS, entry.phone, now, body
                )
            ],
        )
        uow.outbox.add_org_event(
            org.id,
            outbox.new_event_id(),
            outbox.WAITLIST_OFFERED,
            outbox.waitlist_payload(
                outbox.WAITLIST_OFFERED,
                org.id,
                entry.id,
                opening.starts_at,
                opening.resource,
                org.timezone,
                now,
            ),
        )
        log.info("waitlist: offered %s to entry %s (%s)", when, entry.id, mask_phone(entry.phone))


# --- a YES -----------------------------------------------------------------------------------


def take_offer(uow: AbstractUnitOfWork, org: OrgInfo, phone: str, now: datetime) -> tuple[str, str]:
    """A YES to the newest offer texted to `phone` (a step): book it if the offer is open and
    the time still free, else say it is gone (the entry keeps its place). Returns the change
    and the answer."""
    offer = uow.waitlist.latest_offer(org.id, phone)
    if offer is None:
        return "no_offer", sms_replies.offer_gone(org.name)
    if offer.status == "taken" and offer.appointment_id is not None:
        # A second YES from the caller who took it: the same answer, nothing booked again.
        taken = uow.appointments.get(org.id, offer.appointment_id)
        if taken is not None and taken.status == "booked":
            when = sms_replies.short_when(taken.starts_at, org.zone)
            answer = sms_replies.offer_booked(org.name, when, offer.resource, taken.reference)
            return "already_taken", answer
    if offer.status != "open" or offer.expires_at <= now or offer.entry_status != "offered":
        if offer.status == "open":
            uow.waitlist.finish_offer(offer, "lapsed", None)
        return "offer_gone", sms_replies.offer_gone(org.name)
    request = BookingRequest(
        who=CallerIdentity(phone, None, offer.name),
        start=ParsedStart(offer.starts_at),
        duration_minutes=offer.duration_minutes,
        service=offer.service,
        notes=None,
        resource=offer.resource,
        own_number=True,
    )
    try:
        with uow.savepoint():
            booking = book_appointment(
                uow, org, request, now=now, vapi_call_id=None, tool_call_id=None
            )
    except Refusal as refusal:
        log.info("waitlist: YES to offer %s refused (%s)", offer.id, type(refusal).__name__)
        uow.waitlist.finish_offer(offer, "gone", None)
        if isinstance(refusal, StartRefused | CalendarUnavailable):
            return "offer_gone", sms_replies.offer_gone(org.name)
        # Not the time but the caller (e.g. as many upcoming bookings as one caller may hold):
        # saying "it is gone" would be untrue.
        return "offer_refused", sms_replies.offer_refused(org.name)
    appointment = uow.appointments.by_reference(org.id, booking.reference)
    uow.waitlist.finish_offer(offer, "taken", appointment.id if appointment else None)
    uow.outbox.add_org_event(
        org.id,
        outbox.new_event_id(),
        outbox.WAITLIST_BOOKED,
        outbox.waitlist_payload(
            outbox.WAITLIST_BOOKED,
            org.id,
            offer.entry_id,
            booking.starts_at,
            booking.resource,
            org.timezone,
            now,
            reference=booking.reference,
        ),
    )
    when = sms_replies.short_when(booking.starts_at, org.zone)
    return "waitlist_booked", sms_replies.offer_booked(
        org.name, when, booking.resource, booking.reference
    )


# --- the owner's view ------------------------------------------------------------------------


def listing(uow: AbstractUnitOfWork, org_id: int) -> list[dict]:
    """The organization's waitlist, in the order of joining: id, masked phone, window (local
    times), part of day, service or length, status."""
    with uow:
        org = org_in(uow, org_id)
        if org is None:
            raise NotFound("organization", org_id)
        rows = uow.waitlist.listing(org_id)
    zone = org.zone
    return [
        {
            "id": r.id,
            "phone": mask_phone(r.phone),
            "window": {
                "start": r.window_start.astimezone(zone).isoformat(),
                "end": r.window_end.astimezone(zone).isoformat(),
            },
            "part_of_day": r.part_of_day,
            "service": r.service,
            "duration_minutes": r.duration_minutes,
            "status": r.status,
            "joined_at": r.created_at.astimezone(zone).isoformat(),
        }
        for r in rows
    ]
