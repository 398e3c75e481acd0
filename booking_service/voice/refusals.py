"""What the assistant says when the rules refuse: one sentence per kind of refusal.

Use cases raise refusals carrying data (`booking_service/domain/errors.py`); this module is the only
place that words them for a caller on the phone.
"""

from __future__ import annotations

from datetime import datetime
from functools import singledispatch

from booking_service.domain.errors import (
    AlreadyStarted,
    AppointmentNotFound,
    CalendarUnavailable,
    CancelledAppointment,
    ChangeLimitReached,
    NeedProof,
    NoMatch,
    NotFound,
    NothingBookable,
    Refusal,
    RequestIdReused,
    StartRefused,
    TooManyUpcoming,
    UnknownResource,
    UnknownService,
    UnverifiedBookingsLimit,
    WaitlistFull,
    WaitlistNeedsVerifiedCaller,
)
from booking_service.domain.times import spoken_datetime
from booking_service.use_cases.orgs import OrgInfo
from booking_service.voice.speech import nonexistent_sentence, offer_sentence, reason_sentence

NOT_FOUND = (
    "I could not find that appointment for the number you are calling from. Please check the "
    "reference or the time. A booking made with another number can be changed from that phone, "
    "or by a member of staff."
)
NO_MATCH = (
    "I could not find a booking with that reference and that phone number or email. Please "
    "check both: I need the reference and the phone number or email it was booked with."
)
NEED_PROOF = (
    "To look up or change a booking I need its reference and the phone number or email it was "
    "booked with, or a call from the phone it was booked with."
)
HAND_OVER = (
    "I have already made several changes on this call, so I can't make more automatically. "
    "Please transfer the caller to a member of staff."
)
REUSED_ID = "That request id was already used, so I did not act on it. Please try again."


def sentence(refusal: Refusal, org: OrgInfo, now: datetime) -> str:
    """The sentence the assistant speaks for `refusal`."""
    return _words(refusal, org, now)


@singledispatch
def _words(refusal: Refusal, org: OrgInfo, now: datetime) -> str:  # pragma: no cover
    raise TypeError(f"no words for {type(refusal).__name__}")


@_words.register
def _(refusal: NothingBookable, org: OrgInfo, now: datetime) -> str:
    return "Nothing can be booked online at the moment. Please ask the business directly."


@_words.register
def _(refusal: UnknownResource, org: OrgInfo, now: datetime) -> str:
    names = ", ".join(refusal.offered)
    return f"I don't know {refusal.requested[:60]!r}. You can book with: {names}."


@_words.register
def _(refusal: UnknownService, org: OrgInfo, now: datetime) -> str:
    names = ", ".join(f"{name} ({minutes} minutes)" for name, minutes in refusal.offered)
    return f"We don't offer {refusal.requested[:60]!r}. We offer: {names}."


@_words.register
def _(refusal: StartRefused, org: OrgInfo, now: datetime) -> str:
    zone = org.zone
    if refusal.reason == StartRefused.NONEXISTENT and refusal.wall is not None:
        why = nonexistent_sentence(refusal.wall, zone)
    elif refusal.reason == StartRefused.JUST_TAKEN:
        why = f"Sorry, {spoken_datetime(refusal.start.astimezone(zone))} was just taken"
        if refusal.kept is not None:
            why += (
                f", so your appointment stays at {spoken_datetime(refusal.kept.astimezone(zone))}"
            )
        why += "."
    else:
        why = reason_sentence(refusal.reason, org, refusal.start, now)
    return f"{why} {offer_sentence(refusal.alternatives, zone)}"


@_words.register
def _(refusal: UnverifiedBookingsLimit, org: OrgInfo, now: datetime) -> str:
    # Nothing about the limit or who else booked: say what the caller can do.
    return (
        "I can't book for a number other than the one you're calling from right now. "
        "If you call from that number I can book it, or I can pass you to a member of staff."
    )


@_words.register
def _(refusal: TooManyUpcoming, org: OrgInfo, now: datetime) -> str:
    if refusal.own_number:
        return (
            f"You already have {refusal.limit} upcoming appointments, which is as many as I can "
            "book automatically. I can pass you to a member of staff who can help."
        )
    # Nothing about whose bookings they are or how many: the caller may not hold them.
    return (
        "I can't book another appointment for those details automatically. "
        "I can pass you to a member of staff who can help."
    )


@_words.register
def _(refusal: CalendarUnavailable, org: OrgInfo, now: datetime) -> str:
    # The owner's own calendar could not be read lately: booking would risk a time they
    # cannot keep, and calling it taken would be a guess too.
    later = "I can pass you to a member of staff who can help, or you can try again a little later."
    if refusal.start is None:
        return f"I can't check the diary for free times right now. {later}"
    when = spoken_datetime(refusal.start.astimezone(org.zone))
    return f"I can't confirm {when} right now, because the diary can't be checked. {later}"


@_words.register
def _(refusal: ChangeLimitReached, org: OrgInfo, now: datetime) -> str:
    return HAND_OVER


@_words.register
def _(refusal: NeedProof, org: OrgInfo, now: datetime) -> str:
    return NEED_PROOF


@_words.register
def _(refusal: NoMatch, org: OrgInfo, now: datetime) -> str:
    return NO_MATCH


@_words.register
def _(refusal: NotFound, org: OrgInfo, now: datetime) -> str:
    if isinstance(refusal, AppointmentNotFound):
        return NOT_FOUND
    return f"I could not find that {refusal.what}."  # pragma: no cover - no tool looks up others


@_words.register
def _(refusal: AlreadyStarted, org: OrgInfo, now: datetime) -> str:
    return (
        f"The appointment {refusal.reference} has already started or taken place, so I can't "
        f"{refusal.action} it. A member of staff can help with that."
    )


@_words.register
def _(refusal: CancelledAppointment, org: OrgInfo, now: datetime) -> str:
    return (
        f"The appointment {refusal.reference} was cancelled, so it cannot be moved. "
        "Would you like to book a new one?"
    )


@_words.register
def _(refusal: RequestIdReused, org: OrgInfo, now: datetime) -> str:
    return REUSED_ID


@_words.register
def _(refusal: WaitlistNeedsVerifiedCaller, org: OrgInfo, now: datetime) -> str:
    return (
        "I can only put you on the waitlist when you call from the phone the offers should be "
        "texted to, with its number shown. Please call us from that phone."
    )


@_words.register
def _(refusal: WaitlistFull, org: OrgInfo, now: datetime) -> str:
    return (
        f"You are already on the waitlist for {refusal.limit} times, which is as many as I can "
        "keep. I can pass you to a member of staff who can help."
    )
