"""ElevenLabs' tool webhooks are not signed: each carries the organization's secret in
`Authorization: Bearer <secret>` (the secret VAPI uses, stored in an ElevenLabs workspace secret
so the model never sees it). A missing or wrong secret is 401 and nothing runs."""

from __future__ import annotations

from flask import request

from booking_service.persistence.unit_of_work import ConnectionScope
from booking_service.use_cases.orgs import OrgInfo, authenticate


def credential() -> str | None:
    """The bearer secret the request carries, if any."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def org_with_secret(scope: ConnectionScope, use_cache: bool) -> OrgInfo | None:
    """The organization whose secret the request carries (from the worker's cache if allowed:
    its version is then confirmed within the request, see voice/pipeline.confirm_cached)."""
    return authenticate(scope.reader(), credential(), scope.org_cache if use_cache else None)
