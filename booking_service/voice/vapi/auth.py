"""VAPI's credentials: a bearer secret (`Authorization: Bearer`, or the legacy X-Vapi-Secret),
or an HMAC signature (X-Signature over "{X-Timestamp}.{raw body}") with the organization named
in the URL. A signed request's answer is kept, so a repeat of it gets the same answer."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import request

from booking_service.domain.errors import NotFound
from booking_service.domain.times import utc_now
from booking_service.persistence.unit_of_work import ConnectionScope
from booking_service.runtime.extensions import Runtime
from booking_service.use_cases.orgs import OrgInfo, authenticate, get_org
from booking_service.use_cases.signatures import Verdict, store_answer, verify

log = logging.getLogger(__name__)

# PostgreSQL's bigint: a larger id in the URL names no organization (and must not reach SQL).
_MAX_ID = 2**63 - 1


def credential() -> str | None:
    """The bearer secret the request carries, if any (an empty X-Vapi-Secret is none)."""
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    secret = request.headers.get("X-Vapi-Secret", "").strip()
    return secret or None


def org_with_secret(scope: ConnectionScope, use_cache: bool) -> OrgInfo | None:
    """The organization whose secret the request carries (from the cache if allowed)."""
    cache = scope.org_cache if use_cache else None
    return authenticate(scope.reader(), credential(), cache)


def org_with_hmac(scope: ConnectionScope, org_id: int) -> OrgInfo | None:
    """The organization the URL names, if it has an HMAC key (the signature is checked next)."""
    if not 0 < org_id <= _MAX_ID:
        return None
    try:
        org = get_org(scope.reader(), org_id)
    except NotFound:
        return None
    return org if org.hmac_key else None


def check_signature(
    rt: Runtime, scope: ConnectionScope, org_id: int, key: str, body: bytes
) -> Verdict:
    """Verify the request's signature with the organization's HMAC key (see verify)."""
    return verify(
        scope.uow(),
        org_id=org_id,
        # Sealed with SECRET_KEY (a key stored before sealing existed is used as it is).
        key=rt.secrets.open_or_plain(key),
        body=body,
        signature=request.headers.get("X-Signature"),
        timestamp=request.headers.get("X-Timestamp"),
        now=utc_now(),
        window=timedelta(seconds=rt.settings.hmac_window_s),
    )


def keep_answer(scope: ConnectionScope, org_id: int, signature: str, answered: dict) -> None:
    """Store a signed request's answer for its repeats; the caller gets it either way."""
    try:
        store_answer(scope.uow(), org_id, signature, answered)
    except Exception:
        # Whatever went wrong (an outage, the time limit, a value PostgreSQL will not store),
        # the work is done and the caller must hear it: a repeat simply runs again.
        log.warning("could not keep the answer of a signed request; a repeat runs again")
