"""VAPI's optional HMAC credential: `x-signature` = hex HMAC-SHA256 of "{x-timestamp}.{body}".

A valid signature proves the sender holds the organization's HMAC key; the timestamp must be
within the replay window (seconds or milliseconds: VAPI does not document the unit). Each
signature is recorded (webhook_signatures) with the answer it got: a repeat inside the window
gets that answer again instead of running anything, so neither nginx re-sending a request after
a worker died nor a captured request replayed can make a second change. A repeat that arrives
before any answer was stored (the first attempt died mid-way) runs again: its tool calls are
idempotent by toolCallId, and at most MAX_RUNS runs are allowed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from booking_service.persistence.unit_of_work import AbstractUnitOfWork

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


# Runs of one signature before an answer is stored for it: nginx re-sends once
# (proxy_next_upstream_tries 2) and a worker may die again; more than that is a replay.
MAX_RUNS = 3


@dataclass(frozen=True)
class Verdict:
    """What to do with a signed request."""

    problem: str | None = None  # why it is refused (for the log only); None when accepted
    signature: str | None = None  # the accepted signature, to store the answer under
    stored_answer: dict | None = None  # the answer to give again instead of running


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
) -> Verdict:
    """Accept, repeat the stored answer, or refuse (with why, for the log only)."""
    if not signature or not timestamp or not timestamp.isascii():
        return Verdict("missing signature or timestamp")
    presented = signature.strip().removeprefix("sha256=").lower()
    if not _HEX_DIGEST.match(presented):
        return Verdict("signature is not a hex SHA-256 digest")
    expected = expected_signature(key, timestamp.strip(), body)
    if not hmac.compare_digest(presented.encode("ascii"), expected.encode("ascii")):
        return Verdict("signature does not match")
    if not _timestamp_ok(timestamp.strip(), now, window):
        return Verdict("timestamp outside the replay window")
    with uow:
        seen = uow.organizations.present_signature(org_id, presented, older_than=now - 2 * window)
        uow.commit()
    if seen.answer is not None:
        log.info("repeated signed request: returning the stored answer")
        return Verdict(signature=presented, stored_answer=seen.answer)
    if seen.attempts > MAX_RUNS:
        return Verdict("signature already used (replay)")
    if seen.attempts > 1:
        log.info("signed request repeated before it was answered: running it again")
    return Verdict(signature=presented)


def store_answer(uow: AbstractUnitOfWork, org_id: int, signature: str, answer: dict) -> None:
    """Keep the answer given to a signed request, for its repeats (own transaction)."""
    with uow:
        uow.organizations.store_signature_answer(org_id, signature, answer)
        uow.commit()


# --- Retell and ElevenLabs -------------------------------------------------------------------

_RETELL_HEADER = re.compile(r"^v=(\d{1,16}),d=([0-9a-fA-F]{64})$")
# Retell's own SDK rejects a signature whose timestamp is more than five minutes off.
RETELL_WINDOW_MS = 5 * 60 * 1000


def retell_signature_ok(body: bytes, header: str | None, api_key: str, now_ms: int) -> bool:
    """Retell's `X-Retell-Signature: v=<unix ms>,d=<hex>`: HMAC-SHA256 keyed with the API key
    over the raw body followed by the millisecond timestamp, at most five minutes off.

    Retell documents the raw body; older integrations signed the compact re-serialisation of
    the JSON, which is accepted too (it carries the same content). Constant-time compare (the
    SDK's own `==` is not)."""
    match = _RETELL_HEADER.match((header or "").strip())
    if match is None:
        return False
    stamp, digest = match.group(1), match.group(2).lower()
    if abs(now_ms - int(stamp)) > RETELL_WINDOW_MS:
        return False
    key = api_key.encode("utf-8")
    for signed in _retell_bodies(body):
        want = hmac.new(key, signed + stamp.encode("ascii"), hashlib.sha256).hexdigest()
        if hmac.compare_digest(want, digest):
            return True
    return False


def _retell_bodies(body: bytes):
    yield body
    try:
        compact = json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8"
        )
    except (ValueError, RecursionError):
        return
    if compact != body:
        yield compact


_ELEVENLABS_HEADER = re.compile(r"^t=(\d{1,12}),v0=([0-9a-fA-F]{64})$")
# The ElevenLabs SDK's construct_event refuses a timestamp older than 30 minutes.
ELEVENLABS_WINDOW_S = 30 * 60


def elevenlabs_signature_ok(body: bytes, header: str | None, secret: str, now_s: float) -> bool:
    """ElevenLabs' `ElevenLabs-Signature: t=<unix s>,v0=<hex>`: HMAC-SHA256 keyed with the
    webhook secret over "{t}.{raw body}", at most 30 minutes old (nor from the future)."""
    match = _ELEVENLABS_HEADER.match((header or "").strip())
    if match is None:
        return False
    stamp, digest = match.group(1), match.group(2).lower()
    if abs(now_s - int(stamp)) > ELEVENLABS_WINDOW_S:
        return False
    message = stamp.encode("ascii") + b"." + body
    want = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, digest)
