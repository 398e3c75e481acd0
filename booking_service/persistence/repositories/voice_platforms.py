"""An organization's voice platform settings (sealed keys stay sealed here)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from booking_service.persistence.db import table
from booking_service.persistence.models import Organization, VoicePlatformSettings
from booking_service.persistence.repositories.driver import HotStatement
from booking_service.persistence.repositories.organizations import (
    ORGANIZATION_COLUMNS,
    OrganizationRow,
    organization_from,
)

_settings = table(VoicePlatformSettings)
_organizations = table(Organization)
_SETTINGS_COLUMNS = list(_settings.c)
# Every signed Retell request reads both: the organization and its settings in one statement
# (no settings row: the columns come back NULL, and the defaults apply).
_ORG_AND_SETTINGS = HotStatement(
    select(*ORGANIZATION_COLUMNS, *_SETTINGS_COLUMNS)
    .select_from(_organizations.outerjoin(_settings, _settings.c.org_id == _organizations.c.id))
    .where(_organizations.c.id == bindparam("p_id"))
)


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

    def get_with_org(self, org_id: int) -> tuple[OrganizationRow, PlatformSettings] | None:
        """The organization and its settings (one statement), or None without such org."""
        row = _ORG_AND_SETTINGS.execute(self.session, {"p_id": org_id}).first()
        if row is None:
            return None
        n = len(ORGANIZATION_COLUMNS)
        org = organization_from(row[:n])
        if row[n] is None:  # no settings row
            return org, PlatformSettings(org.id)
        stored = dict(zip((c.name for c in _SETTINGS_COLUMNS), row[n:], strict=True))
        return org, PlatformSettings(**stored)

    def update(self, org_id: int, values: dict[str, object]) -> None:
        """Set the given columns, creating the row on first use."""
        self.session.execute(
            insert(_settings)
            .values(org_id=org_id, **values)
            .on_conflict_do_update(index_elements=[_settings.c.org_id], set_=values)
        )
