"""Sending one webhook: signed per the Standard Webhooks spec, over HTTP with httpx.

Headers: `webhook-id` (the event's id, the same on every attempt), `webhook-timestamp` (this
attempt, Unix seconds) and `webhook-signature` (`v1,<base64 HMAC-SHA256 over id.timestamp.body>`,
one entry per valid secret while a rotation's grace lasts), signed with the `standardwebhooks`
package. Redirects are not followed; a target that resolves to a loopback, private, link-local
or otherwise internal address is refused unless explicitly allowed.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx
from standardwebhooks.webhooks import Webhook

USER_AGENT = "booking_service-webhooks/1"


@dataclass(frozen=True)
class Sent:
    """What one attempt got: a status code, or an error (timeout, refused, bad target)."""

    status_code: int | None
    error: str | None
    latency_ms: int
    retry_after_s: float | None = None


class UnsafeTarget(ValueError):
    """The URL is not http(s), or its host resolves to an address we must not call."""


def check_target(url: str, *, allow_private: bool) -> None:
    """Raise UnsafeTarget for a URL that is not http(s) or whose host resolves to a loopback,
    private, link-local, multicast, reserved or unspecified address (unless allowed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget("the URL must be http:// or https:// with a host")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeTarget(f"the host does not resolve ({exc.__class__.__name__})") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            raise UnsafeTarget("the host resolves to a private or internal address")


def signature(secrets: list[str], event_id: str, at: datetime, body: str) -> str:
    """The `webhook-signature` header: one `v1,...` entry per secret."""
    return " ".join(Webhook(secret).sign(event_id, at, body) for secret in secrets)


def _retry_after(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def send(
    url: str,
    *,
    event_id: str,
    body: str,
    secrets: list[str],
    timeout_s: float,
    allow_private: bool,
) -> Sent:
    """POST `body` to `url`, signed; never raises for what the target does."""
    started = time.monotonic()
    at = datetime.now(UTC)

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        check_target(url, allow_private=allow_private)
    except UnsafeTarget as exc:
        return Sent(None, f"refused target: {exc}", took())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature(secrets, event_id, at, body),
    }
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
            response = client.post(url, content=body.encode(), headers=headers)
    except httpx.TimeoutException:
        return Sent(None, f"timed out after {timeout_s:g} s", took())
    except httpx.HTTPError as exc:
        return Sent(None, f"{exc.__class__.__name__}: {str(exc)[:200]}", took())
    return Sent(
        response.status_code,
        None,
        took(),
        _retry_after(response.headers.get("retry-after"), datetime.now(UTC)),
    )
