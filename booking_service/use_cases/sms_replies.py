"""Replies to our texts (#29): 1 confirms, 2 cancels, YES takes a waitlist offer.

A reply is about what was last texted to that number: the appointment of the newest
confirmation, reminder or "moved" message, or the newest waitlist offer (for YES). When that
appointment is over, gone or unknown, the answer asks which, listing the caller's own upcoming
times with their references ("2 ACD34F" then names one). Only the sender's own appointments are
ever reached: a text's From is the number the booking was made with, and nothing else is read.
A number with no appointment and no offer changes nothing and gets no answer.

Each reply is acted on once, by its MessageSid (recorded with the change, with the answer
given): a retry is answered the same and changes nothing. Confirming twice records one
confirmation and one `appointment.confirmed`; cancelling goes through the cancel step like any
cancellation (events, calendar removal, the cancellation text).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from booking_service.domain import caller_messages, sms_replies
from booking_service.domain.errors import AlreadyStarted, Refusal
from booking_service.domain.events import AppointmentConfirmed, appointment_event
from booking_service.domain.normalize import mask_phone
from booking_service.persistence.repositories.appointments import AppointmentRow
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases.appointments import Proof, cancel_appointment
from booking_service.use_cases.catalogue import load_catalogue
from booking_service.use_cases.orgs import OrgInfo, org_in
from booking_service.use_cases.waitlist import take_offer

log = logging.getLogger(__name__)

_ABOUT_APPOINTMENT = (
    caller_messages.CONFIRMATION,
    caller_messages.REMINDER,
    caller_messages.RESCHEDULED,
)


@dataclass(frozen=True)
class Answered:
    """What a reply did (`change`, for the log; None: nothing) and the text answered (None:
    an empty TwiML answer)."""

    change: str | None
    answer: str | None


def answer_reply(
    uow: AbstractUnitOfWork, org_id: int, phone: str, body: str, message_sid: str, now: datetime
) -> Answered:
    """Act on a reply from `phone` (normalised) to the organization's number."""
    reply = sms_replies.parse(body)
    with uow:
        contact = uow.contacts.find_by_phone(org_id, phone)
        org = org_in(uow, org_id)
        if contact is None or org is None:
            return Answered(None, None)  # not a caller of this business: nothing to answer
        if not uow.notifications.remember_inbound(org_id, message_sid):
            return Answered("already_handled", uow.notifications.answered(org_id, message_sid))
        answered = _act(uow, org, contact.id, phone, reply, now)
        uow.notifications.record_answer(org_id, message_sid, answered.answer)
        uow.commit()
    if answered.change:
        log.info("SMS reply from %s: %s", mask_phone(phone), answered.change)
    return answered


def _act(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    contact_id: int,
    phone: str,
    reply: sms_replies.Reply,
    now: datetime,
) -> Answered:
    kinds = (*_ABOUT_APPOINTMENT, caller_messages.WAITLIST_OFFER)
    last = uow.notifications.last_about(org.id, phone, kinds)
    if (
        reply.action == sms_replies.YES
        and reply.reference is None
        and last is not None
        and last[0] == caller_messages.WAITLIST_OFFER
    ):
        change, answer = take_offer(uow, org, phone, now)
        return Answered(change, answer)
    upcoming = [a for a in uow.appointments.upcoming(org.id, contact_id, now) if a.starts_at > now]
    target = _target(uow, org, contact_id, phone, reply, last)
    if target is None or target.starts_at <= now or target.status not in ("booked", "cancelled"):
        if not upcoming:
            return Answered(None, None)
        choices = [(_when(org, a), a.reference) for a in upcoming]
        return Answered("asked_which", sms_replies.which(org.name, choices))
    when = _when(org, target)
    if target.status == "cancelled":
        if reply.action == sms_replies.OTHER and upcoming:
            choices = [(_when(org, a), a.reference) for a in upcoming]
            return Answered("asked_which", sms_replies.which(org.name, choices))
        return Answered(None, sms_replies.already_cancelled(org.name, when))
    if reply.action == sms_replies.OTHER:
        return Answered(None, sms_replies.help_line(org.name, when))
    if reply.action == sms_replies.CANCEL:
        return _cancel(uow, org, phone, target, when, now)
    if uow.appointments.confirm(org.id, target.id):
        names = load_catalogue(uow, org).resource_names()
        uow.add_event(
            appointment_event(
                AppointmentConfirmed,
                org.id,
                org.timezone,
                target,
                names.get(target.resource_id, ""),
            )
        )
        return Answered("confirmed", sms_replies.confirmed(org.name, when))
    return Answered("already_confirmed", sms_replies.confirmed(org.name, when))


def _target(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    contact_id: int,
    phone: str,
    reply: sms_replies.Reply,
    last: tuple[str, int] | None,
) -> AppointmentRow | None:
    """The appointment a reply is about, row-locked: the one it names by reference (the
    caller's own only), else the one the last confirmation or reminder was about. `last`:
    the newest text of any kind a reply answers (a waitlist offer among them)."""
    if reply.reference is not None:
        return uow.appointments.of_contact(org.id, contact_id, reference=reply.reference)
    if last is not None and last[0] not in _ABOUT_APPOINTMENT:
        # The newest text was an offer: the newest about an appointment may be older. When
        # the newest of all is about one, it is the newest of those too.
        last = uow.notifications.last_about(org.id, phone, _ABOUT_APPOINTMENT)
    if last is None or last[1] is None:
        return None
    # Only the contact's own: the number may have moved to another contact since.
    return uow.appointments.of_contact(org.id, contact_id, appointment_id=last[1])


def _cancel(
    uow: AbstractUnitOfWork,
    org: OrgInfo,
    phone: str,
    target: AppointmentRow,
    when: str,
    now: datetime,
) -> Answered:
    try:
        with uow.savepoint():
            outcome = cancel_appointment(
                uow,
                org,
                Proof(verified_number=phone, reference=target.reference),
                start=None,
                reason="replied 2 by text",
                now=now,
            )
    except AlreadyStarted:
        return Answered(None, sms_replies.too_late(org.name, when))
    except Refusal as refusal:  # pragma: no cover - the proof is the booking's own number
        log.warning("SMS cancel refused: %s", type(refusal).__name__)
        return Answered(None, None)
    if outcome.already_cancelled:
        return Answered(None, sms_replies.already_cancelled(org.name, when))
    return Answered("cancelled", sms_replies.cancelled(org.name, when))


def _when(org: OrgInfo, appointment: AppointmentRow) -> str:
    return sms_replies.short_when(appointment.starts_at, org.zone)
