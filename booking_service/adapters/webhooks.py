"""Sending one webhook: signed per the Standard Webhooks spec, over HTTP with httpx.

Headers: `webhook-id` (the event's id, the same on every attempt), `webhook-timestamp` (this
attempt, Unix seconds) and `webhook-signature` (`v1,<base64 HMAC-SHA256 over id.timestamp.body>`,
one entry per valid secret while a rotation's grace lasts), signed with the `standardwebhooks`
package. Redirects are not followed; a target that resolves to a loopback, private, link-local
or otherwise internal address is refused unless explicitly allowed, and the request goes to
the very address that was checked.
"""

from __future__ import annotations

import ipaddress
import math
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx
from standardwebhooks.webhooks import Webhook

from booking_service.ports.webhooks import Sent

__all__ = ["Sent", "StandardWebhookSender", "UnsafeTarget", "check_target", "send"]

USER_AGENT = "booking_service-webhooks/1"
# What a receiver may answer with: enough for any error text, never a flood into memory.
MAX_RESPONSE_BYTES = 64 * 1024
# A receiver cannot ask for a pause longer than this (and inf or 1e20 must not crash us).
MAX_RETRY_AFTER_S = 24 * 3600.0


class UnsafeTarget(ValueError):
    """The URL is not http(s), or its host resolves to an address we must not call."""


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix: checked as IPv4
_SIIT = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 IPv4-translated: checked as IPv4
# Refused whatever they carry: the deprecated IPv4-compatible form (`::10.0.0.5`, RFC 4291
# 2.5.5.1), which some stacks still route to the IPv4 address, and the NAT64 local-use prefix
# (RFC 8215), where a local translator decides how (and whether) an IPv4 address is embedded.
# Neither is ever a public receiver's address.
_REFUSED_V6 = (ipaddress.ip_network("::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Not a public unicast address, including IPv4 hidden in IPv6 forms (mapped, SIIT, NAT64,
    6to4, Teredo, IPv4-compatible), which a gateway would turn into the internal address they
    carry."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.teredo is not None or any(address in net for net in _REFUSED_V6):
            return True
        embedded = [address.ipv4_mapped, address.sixtofour]
        if address in _NAT64 or address in _SIIT:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if any(v4 is not None and _internal(v4) for v4 in embedded):
            return True
    return not address.is_global or address.is_multicast


@dataclass(frozen=True)
class Target:
    """Where to connect: the checked address, and the names the receiver expects."""

    url: str  # the URL with the checked address in place of the host name
    host_header: str
    sni_hostname: str | None  # the TLS server name (https), so certificates are checked by it


def check_target(url: str, *, allow_private: bool) -> Target:
    """Resolve the URL's host once and check it: http(s) only, and no loopback, private,
    link-local, multicast, reserved or unspecified address (unless allowed). The request then
    goes to the address checked, so a DNS answer that changes in between (rebinding) cannot
    send it anywhere else. Raises UnsafeTarget."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise UnsafeTarget("the URL's port is not a number from 1 to 65535") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget("the URL must be http:// or https:// with a host")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeTarget(f"the host does not resolve ({exc.__class__.__name__})") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not allow_private and any(_internal(address) for address in addresses):
        raise UnsafeTarget("the host resolves to a private or internal address")
    chosen = addresses[0]
    literal = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo + '@' if userinfo else ''}{literal}:{port}"
    host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in parts.hostname:  # an IPv6 literal keeps its brackets in Host
        host_header = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
    return Target(
        url=parts._replace(netloc=netloc).geturl(),
        host_header=host_header,
        sni_hostname=parts.hostname if parts.scheme == "https" else None,
    )


def signature(secrets: list[str], event_id: str, at: datetime, body: str) -> str:
    """The `webhook-signature` header: one `v1,...` entry per secret."""
    return " ".join(Webhook(secret).sign(event_id, at, body) for secret in secrets)


def _retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds the receiver asks us to wait, bounded to [0, 24 h]; None when not given or
    unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if math.isnan(seconds):
            return None
        return min(max(0.0, seconds), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER_S)


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
        target = check_target(url, allow_private=allow_private)
    except UnsafeTarget as exc:
        return Sent(None, f"refused target: {exc}", took())
    headers = {
        "host": target.host_header,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature(secrets, event_id, at, body),
    }
    return _post_within(target, body, headers, timeout_s, took)


def _post_within(target: Target, body: str, headers: dict, timeout_s: float, took) -> Sent:
    """POST with one deadline for the whole exchange (connect, headers, body), however slowly
    a receiver drips its answer; at most MAX_RESPONSE_BYTES of the body are read. Never raises:
    whatever goes wrong is the attempt's error."""
    outcome: dict = {}
    client = httpx.Client(timeout=timeout_s, follow_redirects=False)

    def exchange() -> None:
        try:
            extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else None
            with client.stream(
                "POST", target.url, content=body.encode(), headers=headers, extensions=extensions
            ) as response:
                received = 0
                for chunk in response.iter_raw():
                    received += len(chunk)
                    if received >= MAX_RESPONSE_BYTES:
                        break
                outcome["response"] = response
        except httpx.TimeoutException:
            outcome["error"] = f"timed out after {timeout_s:g} s"
        except Exception as exc:  # an attempt's failure, whatever the receiver or URL did
            outcome["error"] = f"{exc.__class__.__name__}: {str(exc)[:200]}"

    worker = threading.Thread(target=exchange, daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        client.close()  # ends the exchange in hand; the thread finishes on its own
        return Sent(None, f"timed out after {timeout_s:g} s", took())
    client.close()
    if "response" not in outcome:
        return Sent(None, outcome.get("error", "no answer"), took())
    response = outcome["response"]
    return Sent(
        response.status_code,
        None,
        took(),
        _retry_after(response.headers.get("retry-after"), datetime.now(UTC)),
    )


class StandardWebhookSender:
    """The WebhookSender port (ports/webhooks.py): `send` above."""

    def send(
        self,
        url: str,
        *,
        event_id: str,
        body: str,
        secrets: list[str],
        timeout_s: float,
        allow_private: bool,
    ) -> Sent:
        return send(
            url,
            event_id=event_id,
            body=body,
            secrets=secrets,
            timeout_s=timeout_s,
            allow_private=allow_private,
        )
