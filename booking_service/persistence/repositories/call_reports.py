"""Call reports: one row per platform call, written once (a repeat of the report is ignored)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from booking_service.persistence.db import table
from booking_service.persistence.models import UQ_CALL_REPORTS_ORG_PLATFORM_CALL, CallReport

_reports = table(CallReport)


@dataclass(frozen=True)
class CallRow:
    """A stored call report."""

    platform: str
    call_id: str
    started_at: datetime | None
    ended_at: datetime | None
    ended_reason: str | None
    summary: str | None
    structured_data: dict | None
    recording_url: str | None
    references: list[str]
    outcome: str
    created_at: datetime


_COLUMNS = [getattr(_reports.c, name) for name in CallRow.__dataclass_fields__]


class CallReportRepository:
    """call_reports, always scoped to the organization."""

    def __init__(self, session: Session):
        self.session = session

    def add(self, org_id: int, values: dict) -> CallRow | None:
        """Store a report; None when this call's report was stored before."""
        row = self.session.execute(
            insert(_reports)
            .values(org_id=org_id, **values)
            .on_conflict_do_nothing(constraint=UQ_CALL_REPORTS_ORG_PLATFORM_CALL)
            .returning(*_COLUMNS)
        ).first()
        return CallRow(**row._mapping) if row is not None else None

    def between(
        self, org_id: int, start: datetime, end: datetime, *, without_booking: bool = False
    ) -> list[CallRow]:
        """Reports of calls that ended (or, without an end, were reported) in [start, end),
        oldest first; `without_booking`: only those whose outcome is not "booked"."""
        when = func.coalesce(_reports.c.ended_at, _reports.c.created_at)
        query = (
            select(*_COLUMNS)
            .where(_reports.c.org_id == org_id, when >= start, when < end)
            .order_by(when, _reports.c.id)
            .limit(5000)
        )
        if without_booking:
            query = query.where(_reports.c.outcome != "booked")
        return [CallRow(**row._mapping) for row in self.session.execute(query)]

    def touching(self, org_id: int, reference: str) -> list[CallRow]:
        """Reports of the calls that booked, moved or cancelled this appointment."""
        rows = self.session.execute(
            select(*_COLUMNS)
            .where(
                _reports.c.org_id == org_id,
                _reports.c.references.contains([reference]),  # @>, on the GIN index
            )
            .order_by(_reports.c.id)
            .limit(20)
        )
        return [CallRow(**row._mapping) for row in rows]

    def recent_without_booking(self, org_id: int, since: datetime, limit: int) -> list[CallRow]:
        """The latest calls that booked nothing, newest first, for follow-up."""
        when = func.coalesce(_reports.c.ended_at, _reports.c.created_at)
        rows = self.session.execute(
            select(*_COLUMNS)
            .where(
                _reports.c.org_id == org_id,
                or_(_reports.c.outcome == "none", _reports.c.outcome == "changed"),
                when >= since,
            )
            .order_by(when.desc(), _reports.c.id.desc())
            .limit(limit)
        )
        return [CallRow(**row._mapping) for row in rows]
