"""VAPI's optional HMAC credential: `x-signature` = hex HMAC-SHA256 of "{x-timestamp}.{body}".

A valid signature proves the sender holds the organization's HMAC key; the timestamp must be
within the replay window (seconds or milliseconds: VAPI does not document the unit), and each
signature is accepted once (recorded in webhook_signatures) so a captured request cannot be
replayed inside the window either.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from datetime import datetime, timedelta

from booking_service.unit_of_work import AbstractUnitOfWork

log = logging.getLogger(__name__)

_HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")
# Timestamps above this are milliseconds (1e11 seconds is the year 5138).
_MILLIS_THRESHOLD = 10**11


def new_hmac_key() -> str:
    """A fresh 256-bit key for the organization's VAPI HMAC credential."""
    return secrets.token_urlsafe(32)


def expected_signature(key: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 over "{timestamp}.{raw body}"."""
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _timestamp_ok(timestamp: str, now: datetime, window: timedelta) -> bool:
    try:
        value = int(timestamp)
    except ValueError:
        try:
            value = int(float(timestamp))
        except (ValueError, OverflowError):
            return False
    seconds = value / 1000 if value > _MILLIS_THRESHOLD else value
    return abs(now.timestamp() - seconds) <= window.total_seconds()


def verify(
    uow: AbstractUnitOfWork,
    *,
    org_id: int,
    key: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: datetime,
    window: timedelta,
) -> str | None:
    """None when the request is authentic and new; otherwise why not (for the log only)."""
    if not signature or not timestamp or not timestamp.isascii():
        return "missing signature or timestamp"
    presented = signature.strip().removeprefix("sha256=").lower()
    if not _HEX_DIGEST.match(presented):
        return "signature is not a hex SHA-256 digest"
    expected = expected_signature(key, timestamp.strip(), body)
    if not hmac.compare_digest(presented.encode("ascii"), expected.encode("ascii")):
        return "signature does not match"
    if not _timestamp_ok(timestamp.strip(), now, window):
        return "timestamp outside the replay window"
    with uow:
        fresh = uow.organizations.remember_signature(org_id, presented, older_than=now - 2 * window)
        uow.commit()
    return None if fresh else "signature already used (replay)"
