"""The REST API's keys: add, look up by id (for the hash comparison), list, revoke."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from booking_service.persistence.db import table
from booking_service.persistence.models import ApiKey, Organization
from booking_service.persistence.repositories.driver import HotStatement
from booking_service.persistence.repositories.organizations import (
    ORGANIZATION_COLUMNS,
    OrganizationRow,
    organization_from,
)

_keys = table(ApiKey)


@dataclass(frozen=True)
class ApiKeyRow:
    """A key as use cases see it (its hash included: only authentication compares it)."""

    id: int
    org_id: int
    name: str
    key_hash: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None


_COLUMNS = [_keys.c[f.name] for f in fields(ApiKeyRow)]


_organizations = table(Organization)
# Every REST request authenticates: the key and its organization in one statement.
_KEY_AND_ORG = HotStatement(
    select(*_COLUMNS, *ORGANIZATION_COLUMNS)
    .select_from(_keys.join(_organizations, _organizations.c.id == _keys.c.org_id))
    .where(_keys.c.id == bindparam("p_id"))
)


def _row(row) -> ApiKeyRow | None:
    return ApiKeyRow(*row) if row is not None else None


class ApiKeyRepository:
    """API keys, scoped to their organization wherever the caller names one."""

    def __init__(self, session: Session):
        self.session = session

    def add(self, org_id: int, name: str, scopes: list[str], key_hash: str) -> ApiKeyRow:
        row = self.session.execute(
            insert(_keys)
            .values(org_id=org_id, name=name, scopes=scopes, key_hash=key_hash)
            .returning(*_COLUMNS)
        ).one()
        return ApiKeyRow(*row)

    def set_hash(self, key_id: int, key_hash: str) -> None:
        self.session.execute(update(_keys).where(_keys.c.id == key_id).values(key_hash=key_hash))

    def get(self, key_id: int) -> ApiKeyRow | None:
        return _row(self.session.execute(select(*_COLUMNS).where(_keys.c.id == key_id)).first())

    def get_with_org(self, key_id: int) -> tuple[ApiKeyRow, OrganizationRow] | None:
        """The key and its organization (one statement), or None without such key."""
        row = _KEY_AND_ORG.execute(self.session, {"p_id": key_id}).first()
        if row is None:
            return None
        n = len(_COLUMNS)
        return ApiKeyRow(*row[:n]), organization_from(row[n:])

    def of_org(self, org_id: int) -> list[ApiKeyRow]:
        rows = self.session.execute(
            select(*_COLUMNS).where(_keys.c.org_id == org_id).order_by(_keys.c.id)
        )
        return [ApiKeyRow(*row) for row in rows]

    def revoke(self, key_id: int, org_id: int | None = None) -> ApiKeyRow | None:
        """Revoke the key (of `org_id` when given); None when there is no such key. A key
        revoked before keeps its first revocation time."""
        statement = (
            update(_keys)
            .where(_keys.c.id == key_id)
            .values(revoked_at=func.coalesce(_keys.c.revoked_at, func.now()))
            .returning(*_COLUMNS)
        )
        if org_id is not None:
            statement = statement.where(_keys.c.org_id == org_id)
        return _row(self.session.execute(statement).first())
