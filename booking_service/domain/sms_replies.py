"""Two-way SMS (#29): what a caller's reply means, and the words of our answer. Pure.

A confirmation or reminder ends with "Reply 1 to confirm or 2 to cancel." (digits: "cancel",
"stop" and the like are carrier opt-out words, and Twilio would unsubscribe the caller from
every text). A waitlist offer asks for YES. A reply may name the appointment by reference
("2 ACD34F") when the caller has more than one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

# Twilio's opt-out and opt-in keywords (Advanced Opt-Out defaults): they keep their meaning.
STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
START_WORDS = frozenset({"START", "UNSTOP"})
# Twilio answers these itself (its HELP reply); we add nothing.
HELP_WORDS = frozenset({"HELP", "INFO"})

CONFIRM, CANCEL, YES, OTHER = "confirm", "cancel", "yes", "other"
_CONFIRM_WORDS = frozenset({"1", "CONFIRM", "CONFIRMED"})
_YES_WORDS = frozenset({"YES", "Y", "YEP", "YEAH"})
_CANCEL_WORDS = frozenset({"2"})
# A word, then optionally a booking reference (the speakable alphabet, 6 characters).
_REPLY = re.compile(r"^([A-Z0-9]+)[\s.!,]*(?:(?:REF(?:ERENCE)?\s*)?([A-Z0-9]{6}))?[\s.!]*$")


@dataclass(frozen=True)
class Reply:
    """What a reply asks: CONFIRM (1, confirm), YES (yes: confirms, or takes a waitlist offer
    when that was the last thing texted), CANCEL (2) or OTHER; `reference` when it names one."""

    action: str
    reference: str | None = None


def keyword(body: str) -> str:
    """The body as a carrier keyword is matched: trimmed, upper case."""
    return body.strip().upper()


def parse(body: str) -> Reply:
    """The reply's meaning (anything unrecognised is OTHER)."""
    match = _REPLY.match(body.strip().upper())
    if match is None:
        return Reply(OTHER)
    word, reference = match.group(1), match.group(2)
    if word in _CONFIRM_WORDS:
        return Reply(CONFIRM, reference)
    if word in _YES_WORDS:
        return Reply(YES, reference)
    if word in _CANCEL_WORDS:
        return Reply(CANCEL, reference)
    return Reply(OTHER)


def short_when(moment: datetime, zone: ZoneInfo) -> str:
    """ "Tue Dec 8 at 10:00 AM": short enough for a text, in the business's zone."""
    local = moment.astimezone(zone)
    hour = local.hour % 12 or 12
    return f"{local:%a %b} {local.day} at {hour}:{local:%M %p}"


def confirmed(business: str, when: str) -> str:
    return f"{business}: thank you, your appointment on {when} is confirmed."


def cancelled(business: str, when: str) -> str:
    return f"{business}: your appointment on {when} is cancelled, as you asked."


def already_cancelled(business: str, when: str) -> str:
    return f"{business}: your appointment on {when} was already cancelled."


def help_line(business: str, when: str) -> str:
    return f"{business}: reply 1 to confirm or 2 to cancel your appointment on {when}."


def which(business: str, choices: list[tuple[str, str]]) -> str:
    """Ask which appointment, listing the caller's own upcoming ones (when, reference)."""
    listed = "; ".join(f"{when} (ref {reference})" for when, reference in choices)
    example = choices[0][1]
    return (
        f"{business}: which appointment? {listed}. Reply 1 and the reference to confirm or "
        f"2 and the reference to cancel, e.g. 2 {example}."
    )


def too_late(business: str, when: str) -> str:
    return f"{business}: your appointment on {when} has already started; please call us."


def waitlist_offer(business: str, when: str, resource: str, minutes: int) -> str:
    """The text offering a freed time to the first in line."""
    return (
        f"{business}: A time opened: {when} with {resource}. "
        f"Reply YES within {minutes} minutes to take it."
    )


def offer_booked(business: str, when: str, resource: str, reference: str) -> str:
    return f"{business}: it's yours: {when} with {resource}. Reference {reference}."


def offer_gone(business: str) -> str:
    return (
        f"{business}: sorry, that time is gone. You're still on the waitlist; we'll text "
        "you if another opens."
    )


def offer_refused(business: str) -> str:
    return (
        f"{business}: sorry, we could not book that time for you automatically. "
        "Please call us to book."
    )
