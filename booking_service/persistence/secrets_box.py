"""Secrets the service must read back (an SMS provider's auth token, the signing secrets of
outgoing webhooks), sealed at rest.

Bearer secrets are stored only as hashes; these cannot be, since sending and signing need
them. They are sealed with Fernet (the `cryptography` package: AES-128-CBC + HMAC-SHA256) under
a key derived from SECRET_KEY with HKDF, and stored as `fernet:<token>`. A database dump alone
then reveals no credential.

Rotation (MultiFernet): set SECRET_KEY to the new value and SECRET_KEY_PREVIOUS to the old one
(comma-separated for several); everything still opens; `flask --app wsgi secrets reseal`
re-seals every stored secret under the new key, after which SECRET_KEY_PREVIOUS can go.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from booking_service.config import Settings

PREFIX = "fernet:"


class SecretsUnavailable(Exception):
    """No SECRET_KEY (to seal), or none of the keys opens a stored secret; the message says
    which, never the secret."""


def _fernet(secret_key: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"booking_service", info=b"stored secrets v1"
    ).derive(secret_key.encode("utf-8"))
    return Fernet(base64.urlsafe_b64encode(key))


class SecretBox:
    """Seals with the current key, opens with the current or any previous one."""

    def __init__(self, current: str, previous: tuple[str, ...] = ()):
        keys = [k for k in (current, *previous) if k]
        self._current = bool(current)
        self._multi = MultiFernet([_fernet(k) for k in keys]) if keys else None

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        previous = tuple(k.strip() for k in settings.secret_key_previous.split(",") if k.strip())
        return cls(settings.secret_key, previous)

    def seal(self, plain: str) -> str:
        """`fernet:<token>` for storing; SecretsUnavailable without SECRET_KEY."""
        if not self._current or self._multi is None:
            raise SecretsUnavailable(
                "SECRET_KEY is not set: it is needed to store provider credentials"
            )
        return PREFIX + self._multi.encrypt(plain.encode("utf-8")).decode("ascii")

    def open(self, stored: str) -> str:
        """The plain secret of a stored value."""
        if not stored.startswith(PREFIX):
            raise SecretsUnavailable("a stored secret is not sealed")
        if self._multi is None:
            raise SecretsUnavailable("SECRET_KEY is not set: stored credentials cannot be read")
        try:
            return self._multi.decrypt(stored[len(PREFIX) :].encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise SecretsUnavailable(
                "no key opens a stored secret: is SECRET_KEY (or SECRET_KEY_PREVIOUS) right?"
            ) from None

    def open_or_plain(self, stored: str) -> str:
        """Like `open`, but a value stored before sealing existed (plain text) is returned as
        it is, until `secrets reseal` seals it."""
        return self.open(stored) if stored.startswith(PREFIX) else stored

    def reseal(self, stored: str) -> str:
        """The same secret sealed under the current key (a plain legacy value gets sealed)."""
        return self.seal(self.open_or_plain(stored))


NO_KEY = SecretBox("")
