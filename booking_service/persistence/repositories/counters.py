"""Per-organization counters in fixed windows: how many times an organization did something
this minute (webhook replays) or this local day (SMS and email budgets).

One statement both counts and answers. Parallel callers queue on the counter's row (the
upsert locks it until their transaction ends), so each sees its own count and no number of
simultaneous requests gets past a limit. A count made in a transaction that rolls back is
undone with it: a use case that counts first and refuses over the limit leaves the count as
it was for the refused request.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, case, exists, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from booking_service.persistence.db import table
from booking_service.persistence.models import Organization, OrgCounter

_counters = table(OrgCounter)
# The actions the daily sending budgets count (the notifier counts each first attempt).
SMS_BUDGET = "sms_budget"
EMAIL_BUDGET = "email_budget"
# "This email is taken" answers an organization got from its web page (use_cases/accounts.py).
EMAIL_TAKEN = "user_email_taken"


class CounterRepository:
    """`org_counters`: one row per (organization, action), holding its current window."""

    def __init__(self, session: Session):
        self.session = session

    def count(self, org_id: int, action: str, window_start: datetime) -> int:
        """Count one more `action` of the organization in the window that starts at
        `window_start`, and return the count in that window including this one.

        A different `window_start` from the stored one starts a new window at 1 (the caller
        truncates its clock: to the minute, to the local midnight, ...). The row stays locked
        until the caller's transaction ends."""
        stmt = pg_insert(_counters).values(
            org_id=org_id, action=action, window_start=window_start, count=1
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=[_counters.c.org_id, _counters.c.action],
            set_={
                "count": case(
                    (_counters.c.window_start == stmt.excluded.window_start, _counters.c.count + 1),
                    else_=1,
                ),
                "window_start": stmt.excluded.window_start,
            },
        ).returning(_counters.c.count)
        return self.session.execute(upsert).scalar_one()

    def current(self, org_id: int, action: str, window_start: datetime) -> int:
        """How many `action`s the organization counted in the window that starts at
        `window_start`, counting none (0 when the stored window is another)."""
        row = self.session.execute(
            select(_counters.c.window_start, _counters.c.count).where(
                _counters.c.org_id == org_id, _counters.c.action == action
            )
        ).first()
        if row is None:
            return 0
        started, counted = row  # not row.count: a Row is a tuple, whose count is a method
        return counted if started == window_start else 0

    def over_budget(self, since: datetime) -> bool:
        """Whether any organization's SMS or email budget refused a message in a window that
        started after `since` (the health page's note)."""
        orgs = table(Organization)
        return bool(
            self.session.execute(
                select(
                    exists().where(
                        _counters.c.org_id == orgs.c.id,
                        _counters.c.window_start > since,
                        or_(
                            and_(
                                _counters.c.action == SMS_BUDGET,
                                _counters.c.count > orgs.c.sms_per_day,
                            ),
                            and_(
                                _counters.c.action == EMAIL_BUDGET,
                                _counters.c.count > orgs.c.email_per_day,
                            ),
                        ),
                    )
                )
            ).scalar()
        )
