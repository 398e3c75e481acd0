"""A message channel: how a confirmation or reminder reaches a caller. SMS through Twilio and
email through SMTP today (adapters/sms.py, adapters/email.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class CannotAsk(Exception):
    """The channel cannot say whether an earlier send arrived (SMTP has no lookup), or could
    not be asked just now."""


@dataclass(frozen=True)
class SmsSender:
    """Where and as whom an organization texts (its Twilio account; the token opened just
    before use)."""

    base_url: str
    account_sid: str
    auth_token: str = field(repr=False)
    sms_from: str | None = None
    messaging_service_sid: str | None = None


@dataclass(frozen=True)
class EmailSender:
    """Where and as whom an organization mails."""

    smtp_url: str = field(repr=False)
    from_address: str = ""
    reply_to: str | None = None


@dataclass(frozen=True)
class Invitation:
    """The calendar entry an email carries (METHOD:REQUEST, or CANCEL with the same UID)."""

    uid: str
    sequence: int
    method: str  # REQUEST | CANCEL
    starts_at: datetime
    ends_at: datetime
    summary: str
    description: str
    organizer: str  # email address
    attendee: str  # email address


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to one address."""

    to: str
    body: str
    subject: str | None = None
    invitation: Invitation | None = None


@dataclass(frozen=True)
class Sending:
    """What the channel said: the provider's id, or why not (no secret in it)."""

    provider_id: str | None = None
    error: str | None = None
    opted_out: bool = False  # the address refused all messages (Twilio 21610)
    retry: bool = False  # certainly not sent, worth another attempt later
    # Perhaps sent (a timeout or an answer lost after the request went out): only asking the
    # channel can tell, never a blind second send.
    in_doubt: bool = False


class MessageChannel(Protocol):
    """Sends and, where it can, looks up a send whose answer was lost."""

    def send(
        self, sender: SmsSender | EmailSender, message: OutgoingMessage, *, timeout_s: float
    ) -> Sending:
        """Send once; never raises for what the provider or the network does."""

    def find_sent(
        self,
        sender: SmsSender | EmailSender,
        message: OutgoingMessage,
        since: datetime,
        known: frozenset[str],
        *,
        timeout_s: float,
    ) -> str | None:
        """The provider id of this very message sent since `since` (not one of `known`), or
        None when it never arrived. Raises CannotAsk."""
