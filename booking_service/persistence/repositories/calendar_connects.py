"""OAuth connections under way (calendar_connect_states): written when the owner or operator
asks for the consent page, taken exactly once by the callback."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from booking_service.persistence.db import table
from booking_service.persistence.models import CalendarConnectState

_states = table(CalendarConnectState)


@dataclass(frozen=True)
class ConnectState:
    """What a `state` was issued for (the verifier still sealed)."""

    org_id: int
    resource_id: int
    provider: str
    code_verifier: str
    options: dict
    user_id: int | None
    expires_at: datetime


class CalendarConnects:
    """The connections under way; a base of CalendarRepository (uow.calendars)."""

    session: Session

    def add_connect_state(self, **values) -> None:
        self.session.execute(insert(_states).values(**values))

    def take_connect_state(self, state_hash: str, now: datetime) -> ConnectState | None:
        """The state with this hash, deleted in the same statement (single use: a second
        callback with it finds nothing); None when unknown or expired."""
        row = self.session.execute(
            delete(_states)
            .where(_states.c.state_hash == state_hash)
            .returning(
                _states.c.org_id,
                _states.c.resource_id,
                _states.c.provider,
                _states.c.code_verifier,
                _states.c.options,
                _states.c.user_id,
                _states.c.expires_at,
            )
        ).first()
        if row is None or row.expires_at <= now:
            return None
        return ConnectState(**row._mapping)

    def forget_connect_states(self, now: datetime) -> int:
        """Delete the expired ones (never used)."""
        result = self.session.execute(delete(_states).where(_states.c.expires_at <= now))
        return result.rowcount  # type: ignore[attr-defined]
