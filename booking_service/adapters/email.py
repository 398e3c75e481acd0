"""Email through SMTP (SMTP_URL), with an iCalendar invitation built with `icalendar`.

`smtp://user:pass@host:587` uses STARTTLS when the server offers it; `smtps://host:465` is TLS
from the first byte. The invitation's UID is the appointment's (notifications.calendar_uid), so
a calendar app updates or removes the one event when a reschedule or a cancellation arrives.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from urllib.parse import unquote, urlsplit

from icalendar import Calendar, Event, vCalAddress

from booking_service.ports.messages import (
    CannotAsk,
    EmailSender,
    Invitation,
    OutgoingMessage,
    Sending,
)


@dataclass(frozen=True)
class EmailResult:
    """The Message-ID of a mail the server accepted, or why not (no secret in it)."""

    message_id: str | None = None
    error: str | None = None
    retry: bool = False
    in_doubt: bool = False


def ics(invitation: Invitation) -> bytes:
    """The invitation as an iCalendar file."""
    calendar = Calendar()
    calendar.add("prodid", "-//booking_service//appointments//EN")
    calendar.add("version", "2.0")
    calendar.add("method", invitation.method)
    event = Event()
    event.add("uid", invitation.uid)
    event.add("sequence", invitation.sequence)
    event.add("dtstamp", datetime.now(UTC))
    event.add("dtstart", invitation.starts_at.astimezone(UTC))
    event.add("dtend", invitation.ends_at.astimezone(UTC))
    event.add("summary", invitation.summary)
    event.add("description", invitation.description)
    event.add("status", "CANCELLED" if invitation.method == "CANCEL" else "CONFIRMED")
    event.add("organizer", vCalAddress(f"mailto:{invitation.organizer}"))
    event.add("attendee", vCalAddress(f"mailto:{invitation.attendee}"))
    calendar.add_component(event)
    return calendar.to_ical()


def compose(
    *,
    sender: str,
    reply_to: str | None,
    to: str,
    subject: str,
    body: str,
    invitation: Invitation | None = None,
) -> EmailMessage:
    """The message: plain text, and the invitation as text/calendar when there is one."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    if reply_to:
        message["Reply-To"] = reply_to
    message["Message-ID"] = make_msgid(domain="booking-service")
    message.set_content(body)
    if invitation is not None:
        message.add_attachment(
            ics(invitation),
            maintype="text",
            subtype="calendar",
            filename="invite.ics",
            params={"method": invitation.method},
        )
    return message


def send_email(smtp_url: str, message: EmailMessage, *, timeout_s: float = 10) -> EmailResult:
    """Hand `message` to the SMTP server of `smtp_url`; never raises for what the server or
    the network does. `retry`: certainly not accepted, try later; `in_doubt`: the server may
    have it (the connection failed during the handover), never to be sent blind again."""
    url = urlsplit(smtp_url)
    implicit_tls = url.scheme == "smtps"
    host, port = url.hostname or "localhost", url.port or (465 if implicit_tls else 587)
    context = ssl.create_default_context()
    server: smtplib.SMTP
    try:
        if implicit_tls:
            server = smtplib.SMTP_SSL(host, port, timeout=timeout_s, context=context)
        else:
            server = smtplib.SMTP(host, port, timeout=timeout_s)
    except (OSError, smtplib.SMTPException) as exc:
        return EmailResult(
            error=f"could not reach the mail server ({type(exc).__name__})", retry=True
        )
    try:
        try:
            server.ehlo()
            if not implicit_tls and server.has_extn("starttls"):
                server.starttls(context=context)
                server.ehlo()
            elif not implicit_tls and url.username and not _is_local(host):
                # Whoever strips STARTTLS on the way must not get the password.
                return EmailResult(error="the mail server offers no STARTTLS; not logging in")
            if url.username:
                server.login(unquote(url.username), unquote(url.password or ""))
        except smtplib.SMTPResponseException as exc:
            code = exc.smtp_code
            return EmailResult(error=f"the mail server answered {code}", retry=code < 500)
        except (OSError, smtplib.SMTPException) as exc:
            reason = f"could not talk to the mail server ({type(exc).__name__})"
            return EmailResult(error=reason, retry=True)
        try:
            server.send_message(message)
        except smtplib.SMTPRecipientsRefused:
            return EmailResult(error="the mail server refused the address")
        except smtplib.SMTPResponseException as exc:
            # An explicit answer: it did not take the message (4xx: try again later).
            code = exc.smtp_code
            return EmailResult(error=f"the mail server answered {code}", retry=code < 500)
        except (OSError, smtplib.SMTPException) as exc:
            reason = f"the connection failed while handing over ({type(exc).__name__})"
            return EmailResult(error=reason, in_doubt=True)
        return EmailResult(message_id=message["Message-ID"])
    finally:
        # The message is handed over (or not) by now; a failing QUIT changes nothing.
        with contextlib.suppress(OSError, smtplib.SMTPException):
            server.quit()


def _is_local(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1")


def address_of(sender: str) -> str:
    """The bare address of "Bright Smile <hello@example.com>"."""
    return parseaddr(sender)[1]


class SmtpEmail:
    """The MessageChannel port (ports/messages.py) for email: `compose` and `send_email`.
    SMTP has no lookup, so a send in doubt cannot be asked about."""

    def send(self, sender, message: OutgoingMessage, *, timeout_s: float) -> Sending:
        assert isinstance(sender, EmailSender), "an email goes out with an EmailSender"
        mail = compose(
            sender=sender.from_address,
            reply_to=sender.reply_to,
            to=message.to,
            subject=message.subject or "",
            body=message.body,
            invitation=message.invitation,
        )
        result = send_email(sender.smtp_url, mail, timeout_s=timeout_s)
        return Sending(
            provider_id=result.message_id,
            error=result.error,
            retry=result.retry,
            in_doubt=result.in_doubt,
        )

    def find_sent(self, sender, message, since, known, *, timeout_s: float) -> str | None:
        raise CannotAsk("the mail server may have it: SMTP cannot be asked")
