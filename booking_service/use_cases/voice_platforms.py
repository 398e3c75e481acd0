"""An organization's settings for the voice platforms: the Retell API key (it signs Retell's
requests), the ElevenLabs post-call webhook secret, the VAPI assistant that `assistant-request`
is answered with, and whether recording URLs are kept. Keys are stored sealed (SECRET_KEY):
verifying a signature needs the key itself."""

from __future__ import annotations

from dataclasses import dataclass

from booking_service.domain.errors import InputError, NotFound
from booking_service.persistence.repositories.voice_platforms import PlatformSettings
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases.orgs import OrgInfo, org_info

__all__ = ["OrgPlatform", "PlatformSettings", "org_platform", "update_platform_settings"]

# A key or secret longer than this is not one (and must not reach HMAC or the database).
_MAX_KEY = 500


@dataclass(frozen=True)
class OrgPlatform:
    """An organization with its voice platform settings (keys still sealed)."""

    org: OrgInfo
    settings: PlatformSettings


def org_platform(uow: AbstractUnitOfWork, org_id: int) -> OrgPlatform | None:
    """The organization with its platform settings, or None when there is none (an unknown
    id in a URL is answered like a bad signature: no lookup is revealed)."""
    if not 0 < org_id < 2**63:
        return None
    with uow:
        found = uow.voice_platforms.get_with_org(org_id)
    if found is None:
        return None
    row, settings = found
    return OrgPlatform(org_info(row), settings)


def _key(field: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > _MAX_KEY or not value.isprintable() or not value.isascii():
        raise InputError(field, "must be a printable ASCII key of at most 500 characters")
    return value


def update_platform_settings(
    uow: AbstractUnitOfWork,
    org_id: int,
    *,
    retell_api_key: str | None = None,
    elevenlabs_webhook_secret: str | None = None,
    vapi_assistant_id: str | None = None,
    keep_recordings: bool | None = None,
    clear: tuple[str, ...] = (),
) -> PlatformSettings:
    """Set what is given (None: unchanged; names in `clear` are removed) and return the
    settings. Raises NotFound without such organization, InputError for an unusable key."""
    values: dict[str, object] = {name: None for name in clear}
    retell = _key("api_key", retell_api_key)
    secret = _key("webhook_secret", elevenlabs_webhook_secret)
    assistant = _key("assistant_id", vapi_assistant_id)
    if retell is not None:
        values["retell_api_key"] = uow.secrets.seal(retell)
    if secret is not None:
        values["elevenlabs_webhook_secret"] = uow.secrets.seal(secret)
    if assistant is not None:
        values["vapi_assistant_id"] = assistant
    if keep_recordings is not None:
        values["keep_recordings"] = keep_recordings
    with uow:
        if uow.organizations.get(org_id) is None:
            raise NotFound("organization", org_id)
        if values:
            uow.voice_platforms.update(org_id, values)
        settings = uow.voice_platforms.get(org_id)
        uow.commit()
    return settings
