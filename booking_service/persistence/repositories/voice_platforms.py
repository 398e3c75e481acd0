"""An organization's voice platform settings (sealed keys stay sealed here)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from booking_service.persistence.db import table
from booking_service.persistence.models import VoicePlatformSettings

_settings = table(VoicePlatformSettings)


@dataclass(frozen=True)
class PlatformSettings:
    """What the voice platforms need of one organization; keys as stored (sealed)."""

    org_id: int
    retell_api_key: str | None = None
    elevenlabs_webhook_secret: str | None = None
    vapi_assistant_id: str | None = None
    keep_recordings: bool = False


class VoicePlatformRepository:
    """voice_platform_settings: one row per organization that set anything."""

    def __init__(self, session: Session):
        self.session = session

    def get(self, org_id: int) -> PlatformSettings:
        """The organization's settings (the defaults when it never set any)."""
        row = self.session.execute(select(_settings).where(_settings.c.org_id == org_id)).first()
        return PlatformSettings(**row._mapping) if row is not None else PlatformSettings(org_id)

    def update(self, org_id: int, values: dict[str, object]) -> None:
        """Set the given columns, creating the row on first use."""
        self.session.execute(
            insert(_settings)
            .values(org_id=org_id, **values)
            .on_conflict_do_update(index_elements=[_settings.c.org_id], set_=values)
        )
