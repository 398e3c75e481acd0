"""SMS through Twilio's REST API with the official `twilio` package.

TWILIO_API_BASE_URL points the client at a Twilio-compatible provider, or at the tests' server
on loopback. The auth token is passed in (opened from its sealed form just before use) and never
logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from booking_service.ports.messages import CannotAsk, OutgoingMessage, Sending, SmsSender

# Twilio's error for a number that replied STOP: it must be treated as opted out.
OPTED_OUT_CODE = 21610


@dataclass(frozen=True)
class SmsResult:
    """What the provider said: a message sid, or why not (no secret in it)."""

    sid: str | None = None
    error: str | None = None
    opted_out: bool = False  # Twilio 21610
    retry: bool = False  # not sent, worth another attempt later (429, no connection)
    # It may have been sent (a timeout, a 5xx, a dropped connection after the request went
    # out): only asking the provider can tell, never a blind second send.
    in_doubt: bool = False


def _client(account: SmsSender, timeout_s: float) -> Client:
    client = Client(
        account.account_sid,
        account.auth_token,
        http_client=TwilioHttpClient(timeout=timeout_s),
    )
    client.api.base_url = account.base_url.rstrip("/")
    return client


def send_sms(account: SmsSender, to: str, body: str, *, timeout_s: float = 10) -> SmsResult:
    """Send one SMS; never raises for what the provider or the network does."""
    sender = (
        {"messaging_service_sid": account.messaging_service_sid}
        if account.messaging_service_sid
        else {"from_": account.sms_from}
    )
    try:
        message = _client(account, timeout_s).messages.create(to=to, body=body, **sender)
    except TwilioRestException as exc:
        if exc.code == OPTED_OUT_CODE:
            return SmsResult(error=f"Twilio {OPTED_OUT_CODE}: the number opted out", opted_out=True)
        error = f"Twilio answered {exc.status} (code {exc.code})"
        if exc.status >= 500:
            return SmsResult(error=error, in_doubt=True)
        return SmsResult(error=error, retry=exc.status == 429)
    except (requests.RequestException, TwilioException) as exc:
        if _never_sent(exc):
            reason = f"could not reach the SMS provider ({type(exc).__name__})"
            return SmsResult(error=reason, retry=True)
        return SmsResult(
            error=f"no answer from the SMS provider ({type(exc).__name__})", in_doubt=True
        )
    return SmsResult(sid=message.sid)


def _never_sent(exc: Exception) -> bool:
    """Whether the request certainly did not reach the provider: the connection was refused,
    the name did not resolve, or connecting timed out. A read timeout or a connection dropped
    after the request went out may have sent it."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError):
        return False
    text = repr(exc)
    return any(sign in text for sign in ("NewConnectionError", "NameResolutionError", "refused"))


def find_sent(
    account: SmsSender,
    to: str,
    body: str,
    since: datetime,
    *,
    known: frozenset[str] = frozenset(),
    timeout_s: float = 10,
) -> str | None:
    """The sid of a message with exactly this body to this number, created since `since` and
    not one of the `known` sids (messages already recorded, e.g. an earlier reminder with the
    same text), or None. Raises when the provider cannot be asked."""
    for message in _client(account, timeout_s).messages.list(to=to, limit=50):
        if message.sid in known or message.body != body:
            continue
        if message.date_created and message.date_created >= since:
            return message.sid
    return None


class TwilioSms:
    """The MessageChannel port (ports/messages.py) for SMS: `send_sms` and `find_sent`."""

    def send(self, sender, message: OutgoingMessage, *, timeout_s: float) -> Sending:
        assert isinstance(sender, SmsSender), "an SMS goes out with an SmsSender"
        result = send_sms(sender, message.to, message.body, timeout_s=timeout_s)
        return Sending(
            provider_id=result.sid,
            error=result.error,
            opted_out=result.opted_out,
            retry=result.retry,
            in_doubt=result.in_doubt,
        )

    def find_sent(
        self,
        sender,
        message: OutgoingMessage,
        since: datetime,
        known: frozenset[str],
        *,
        timeout_s: float,
    ) -> str | None:
        assert isinstance(sender, SmsSender), "an SMS is looked up with an SmsSender"
        try:
            return find_sent(
                sender, message.to, message.body, since, known=known, timeout_s=timeout_s
            )
        except Exception as exc:
            raise CannotAsk(f"the SMS provider could not be asked ({type(exc).__name__})") from exc
