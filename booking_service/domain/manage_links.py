"""Manage links: the PUBLIC_URL/b/<token> in a caller's confirmation and reminders that lets
the caller cancel or move that one appointment.

The token is the organization and appointment ids signed with a key derived from SECRET_KEY
(itsdangerous, HMAC-SHA256): it cannot be guessed or altered, names one appointment and
nothing else, and is the same every time it is made (a message in doubt is matched with
Twilio's copy by its text). Whether it still works is decided where it is used: only while
its appointment is booked and has not ended.
"""

from __future__ import annotations

from collections.abc import Sequence

from itsdangerous import BadSignature, URLSafeSerializer

# Also the key derivation's salt: a token of another purpose signed with the same SECRET_KEY
# (a session cookie) is never a manage token.
_PURPOSE = "booking_service manage link"
PATH = "/b/"


def _serializer(keys: Sequence[str]) -> URLSafeSerializer:
    # itsdangerous signs with the last key and accepts any: SECRET_KEY_PREVIOUS first.
    return URLSafeSerializer(list(keys), salt=_PURPOSE)


def manage_token(keys: Sequence[str], org_id: int, appointment_id: int) -> str:
    """The token of one appointment (`keys`: previous secret keys, then the current one)."""
    return str(_serializer(keys).dumps([org_id, appointment_id]))


def read_manage_token(keys: Sequence[str], token: str) -> tuple[int, int] | None:
    """(organization id, appointment id) of a genuine token, else None."""
    if not keys or not token or len(token) > 200:
        return None
    try:
        value = _serializer(keys).loads(token)
    except BadSignature:
        return None
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(type(v) is int and 0 < v < 2**63 for v in value)
    ):
        return value[0], value[1]
    return None  # pragma: no cover - only we sign, and only this shape


def manage_url(public_url: str, token: str) -> str:
    """The link a caller is sent."""
    return public_url.rstrip("/") + PATH + token
