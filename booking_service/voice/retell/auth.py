"""Retell's credential: `X-Retell-Signature` made with the organization's Retell API key over
the raw body (use_cases/signatures.retell_signature_ok). The URL names the organization; an
unknown one, one without a Retell key, and a forged, stale or missing signature are all the
same 401, and nothing runs."""

from __future__ import annotations

import time

from flask import request

from booking_service.persistence.unit_of_work import ConnectionScope
from booking_service.runtime.extensions import Runtime
from booking_service.use_cases.signatures import retell_signature_ok
from booking_service.use_cases.voice_platforms import OrgPlatform, org_platform

HEADER = "X-Retell-Signature"


def signed_org(rt: Runtime, scope: ConnectionScope, org_id: int, body: bytes) -> OrgPlatform | None:
    """The organization the URL names when the request is signed with its Retell API key."""
    found = org_platform(scope.reader(), org_id)
    if found is None or found.settings.retell_api_key is None:
        return None
    key = rt.secrets.open_or_plain(found.settings.retell_api_key)
    now_ms = int(time.time() * 1000)
    return found if retell_signature_ok(body, request.headers.get(HEADER), key, now_ms) else None
