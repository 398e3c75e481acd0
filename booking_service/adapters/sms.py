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

# Twilio's error for a number that replied STOP: it must be treated as opted out.
OPTED_OUT_CODE = 21610


@dataclass(frozen=True)
class Account:
    """Where and as whom to send."""

    base_url: str
    account_sid: str
    auth_token: str
    sms_from: str | None = None
    messaging_service_sid: str | None = None


@dataclass(frozen=True)
class SmsResult:
    """What the provider said: a message sid, or why not (no secret in it)."""

    sid: str | None = None
    error: str | None = None
    opted_out: bool = False  # Twilio 21610
    retry: bool = False  # worth another attempt later (429, 5xx, the network)


def _client(account: Account, timeout_s: float) -> Client:
    client = Client(
        account.account_sid,
        account.auth_token,
        http_client=TwilioHttpClient(timeout=timeout_s),
    )
    client.api.base_url = account.base_url.rstrip("/")
    return client


def send_sms(account: Account, to: str, body: str, *, timeout_s: float = 10) -> SmsResult:
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
        return SmsResult(
            error=f"Twilio answered {exc.status} (code {exc.code})",
            retry=exc.status == 429 or exc.status >= 500,
        )
    except (requests.RequestException, TwilioException) as exc:
        return SmsResult(
            error=f"could not reach the SMS provider ({type(exc).__name__})", retry=True
        )
    return SmsResult(sid=message.sid)


def find_sent(
    account: Account, to: str, body: str, since: datetime, *, timeout_s: float = 10
) -> str | None:
    """The sid of a message with exactly this body to this number, created since `since`
    (a send in doubt after a crash), or None. Raises when the provider cannot be asked."""
    for message in _client(account, timeout_s).messages.list(to=to, limit=50):
        if message.body == body and message.date_created and message.date_created >= since:
            return message.sid
    return None
