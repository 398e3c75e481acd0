"""The worker's side of calendars: claiming a due push and reading the appointment's state
for it, marking pushes done or failed, claiming a due poll and storing the busy times read.

The worker claims only the oldest pending push of a link and appointment, so two workers never
push the same appointment to the same calendar at once; it then reads the appointment as it is
now together with the pending pushes that state covers, and marks exactly those done: a change
committed meanwhile keeps its own push pending.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.orm import aliased

from booking_service.persistence.db import table
from booking_service.persistence.models import (
    Appointment,
    CalendarBusy,
    CalendarLink,
    CalendarPush,
    CalendarRemoteEvent,
    Contact,
    Organization,
    Resource,
)
from booking_service.persistence.repositories.calendar_links import (
    LINK_COLUMNS,
    CalendarLinks,
    LinkRow,
)
from booking_service.persistence.repositories.common import (
    WITH_CONTACT_AND_RESOURCE,
    link_blocks,
)

_links = table(CalendarLink)
_busy = table(CalendarBusy)
_pushes = table(CalendarPush)
_remote = table(CalendarRemoteEvent)
_appointments = table(Appointment)
_contacts = table(Contact)
_resources = table(Resource)
_orgs = table(Organization)


@dataclass(frozen=True)
class DuePush:
    """The oldest pending push of one link and appointment, row-locked by this worker."""

    id: int
    org_id: int
    attempts: int
    link: LinkRow
    appointment_id: int


@dataclass(frozen=True)
class PushState:
    """The appointment as it is now, what the link's calendar should show, and the pending
    pushes this state covers."""

    covered: list[int]
    reference: str
    sequence: int
    status: str
    resource_id: int
    resource: str
    starts_at: datetime
    ends_at: datetime
    name: str | None
    service: str | None
    phone: str | None
    unconfirmed: bool
    timezone: str


@dataclass(frozen=True)
class DuePoll:
    """A blocking link whose calendar is due to be read, row-locked by this worker."""

    link: LinkRow
    timezone: str
    horizon_days: int


_later = aliased(_pushes)

_CLAIM_PUSH = (
    select(
        # Labelled: the link's columns include its own id and org_id.
        _pushes.c.id.label("push_id"),
        _pushes.c.attempts.label("push_attempts"),
        _pushes.c.appointment_id.label("push_appointment_id"),
        *LINK_COLUMNS,
    )
    .select_from(_pushes.join(_links, _links.c.id == _pushes.c.link_id))
    .where(
        _pushes.c.status == "pending",
        _pushes.c.next_attempt_at <= bindparam("p_now"),
        _pushes.c.org_id.not_in(bindparam("p_busy", expanding=True)),
        # A link whose grant is gone waits for the owner to connect it again.
        ~_links.c.reconnect_needed,
        # Only the oldest pending push of a link and appointment can be claimed: while one
        # worker holds it, no other worker pushes that appointment to that calendar.
        ~select(literal(1))
        .where(
            _later.c.link_id == _pushes.c.link_id,
            _later.c.appointment_id == _pushes.c.appointment_id,
            _later.c.status == "pending",
            _later.c.id < _pushes.c.id,
        )
        .exists(),
    )
    .order_by(_pushes.c.next_attempt_at)
    .limit(1)
    .with_for_update(of=_pushes, skip_locked=True)
)

_PUSH_STATE = (
    select(
        # The pending pushes this read covers: one committed later is not among them.
        select(func.coalesce(func.array_agg(_later.c.id), text("'{}'::bigint[]")))
        .where(
            _later.c.link_id == bindparam("p_link"),
            _later.c.appointment_id == bindparam("p_appointment"),
            _later.c.status == "pending",
        )
        .scalar_subquery()
        .label("covered"),
        _appointments.c.reference,
        _appointments.c.sequence,
        _appointments.c.status,
        _appointments.c.resource_id,
        _resources.c.name.label("resource"),
        _appointments.c.starts_at,
        _appointments.c.ends_at,
        _appointments.c.name,
        _appointments.c.service,
        _contacts.c.phone,
        _appointments.c.unconfirmed,
        _orgs.c.timezone,
    )
    .select_from(WITH_CONTACT_AND_RESOURCE.join(_orgs, _orgs.c.id == _appointments.c.org_id))
    .where(
        _appointments.c.org_id == bindparam("p_org"),
        _appointments.c.id == bindparam("p_appointment"),
    )
)

_CLAIM_POLL = (
    select(*LINK_COLUMNS, _orgs.c.timezone, _orgs.c.horizon_days)
    .select_from(_links.join(_orgs, _orgs.c.id == _links.c.org_id))
    .where(
        _links.c.block,
        ~_links.c.reconnect_needed,
        (_links.c.last_poll_at.is_(None)) | (_links.c.last_poll_at <= bindparam("p_due_before")),
        # A link that keeps failing waits out its backoff.
        (_links.c.next_poll_at.is_(None)) | (_links.c.next_poll_at <= bindparam("p_now")),
        _links.c.org_id.not_in(bindparam("p_busy", expanding=True)),
    )
    .order_by(_links.c.last_poll_at.asc().nulls_first())
    .limit(1)
    # NO KEY UPDATE: a booking's push (its foreign key takes KEY SHARE on the link) never
    # waits for a claim.
    .with_for_update(of=_links, skip_locked=True, key_share=True)
)


class CalendarSync(CalendarLinks):
    """Pushes and polls (the worker), on top of the links."""

    # --- pushes (the worker) --------------------------------------------------------------------

    def claim_push(self, now: datetime, exclude_orgs: Sequence[int] = ()) -> DuePush | None:
        """The oldest due push, row-locked, of an organization not in `exclude_orgs`."""
        row = self.session.execute(
            # [0] for none: no organization has id 0, and the statement keeps one shape.
            _CLAIM_PUSH,
            {"p_now": now, "p_busy": list(exclude_orgs) or [0]},
        ).first()
        if row is None:
            return None
        values = row._mapping
        link = LinkRow(*(values[c.name] for c in LINK_COLUMNS))
        return DuePush(
            id=values["push_id"],
            org_id=link.org_id,
            attempts=values["push_attempts"],
            link=link,
            appointment_id=values["push_appointment_id"],
        )

    def push_state(self, due: DuePush) -> PushState | None:
        row = self.session.execute(
            _PUSH_STATE,
            {"p_org": due.org_id, "p_link": due.link.id, "p_appointment": due.appointment_id},
        ).first()
        return PushState(**row._mapping) if row is not None else None

    def pushes_done(self, push_ids: list[int], now: datetime) -> None:
        self.session.execute(
            update(_pushes)
            .where(_pushes.c.id.in_(push_ids), _pushes.c.status == "pending")
            .values(status="done", done_at=now, last_error=None)
        )

    def forget_done_pushes(self, before: datetime) -> int:
        """Delete pushes done before `before` (they only said "this was brought up to date")."""
        result = self.session.execute(
            delete(_pushes).where(_pushes.c.status == "done", _pushes.c.done_at < before)
        )
        return result.rowcount  # type: ignore[attr-defined]

    def defer_link_pushes(self, link_id: int, retry_at: datetime) -> None:
        """Every pending push of the link waits until `retry_at` (its server is down)."""
        self.session.execute(
            update(_pushes)
            .where(
                _pushes.c.link_id == link_id,
                _pushes.c.status == "pending",
                _pushes.c.next_attempt_at < retry_at,
            )
            .values(next_attempt_at=retry_at)
        )

    def push_failed(self, due: DuePush, error: str, retry_at: datetime, now: datetime) -> None:
        self.session.execute(
            update(_pushes)
            .where(_pushes.c.id == due.id)
            .values(attempts=_pushes.c.attempts + 1, next_attempt_at=retry_at, last_error=error)
        )
        self.update_link(due.link.id, last_error=error, last_error_at=now)

    # --- polls (the worker) ---------------------------------------------------------------------

    def claim_poll(
        self, due_before: datetime, now: datetime, exclude_orgs: Sequence[int] = ()
    ) -> DuePoll | None:
        """A blocking link due a poll (and past its backoff) of an organization not in
        `exclude_orgs`, its `last_poll_at` moved to `now` (commit promptly: no other worker
        then takes it until the next interval)."""
        row = self.session.execute(
            _CLAIM_POLL,
            {"p_due_before": due_before, "p_now": now, "p_busy": list(exclude_orgs) or [0]},
        ).first()
        if row is None:
            return None
        values = row._mapping
        self.update_link(values["id"], last_poll_at=now)
        return DuePoll(
            link=LinkRow(*(values[c.name] for c in LINK_COLUMNS)),
            timezone=values["timezone"],
            horizon_days=values["horizon_days"],
        )

    def replace_busy(
        self,
        link: LinkRow,
        ranges: list[tuple[datetime, datetime]] | None,
        now: datetime,
        sync_state: str | None = None,
    ) -> None:
        """The link's busy times are now exactly `ranges` (None: unchanged, keep them); the
        poll was good, and `sync_state` is what the provider wants back next time."""
        if ranges is not None:
            self.session.execute(delete(_busy).where(_busy.c.link_id == link.id))
        if ranges:
            self.session.execute(
                insert(_busy),
                [
                    {
                        "org_id": link.org_id,
                        "link_id": link.id,
                        "resource_id": link.resource_id,
                        "starts_at": start,
                        "ends_at": end,
                    }
                    for start, end in ranges
                ],
            )
        self.update_link(
            link.id,
            last_poll_at=now,
            last_good_sync_at=now,
            last_error=None,
            last_error_at=None,
            consecutive_failures=0,
            next_poll_at=None,
            sync_state=sync_state,
        )

    # --- the ids providers gave our events ------------------------------------------------------

    def remote_id(self, link_id: int, uid: str) -> str | None:
        return self.session.execute(
            select(_remote.c.remote_id).where(_remote.c.link_id == link_id, _remote.c.uid == uid)
        ).scalar()

    def keep_remote_id(self, link: LinkRow, uid: str, remote_id: str | None) -> None:
        """Remember (or, None, forget) the provider's id of our event with this UID."""
        self.session.execute(
            delete(_remote).where(_remote.c.link_id == link.id, _remote.c.uid == uid)
        )
        if remote_id is not None:
            self.session.execute(
                insert(_remote).values(
                    org_id=link.org_id, link_id=link.id, uid=uid, remote_id=remote_id
                )
            )

    def poll_failed(
        self, link: LinkRow, error: str, now: datetime, next_poll_at: datetime | None = None
    ) -> None:
        """Keep the busy times last read (the staleness policy decides what they are worth);
        one more failure in a row, and no poll before `next_poll_at` (the backoff)."""
        self.update_link(
            link.id,
            last_poll_at=now,
            last_error=error,
            last_error_at=now,
            consecutive_failures=_links.c.consecutive_failures + 1,
            next_poll_at=next_poll_at,
        )

    def busy(self, org_id: int, resource_ids: list[int], start: datetime, end: datetime):
        """(resource_id, starts_at, ends_at) of the external busy times overlapping a window."""
        return self.session.execute(
            select(_busy.c.resource_id, _busy.c.starts_at, _busy.c.ends_at)
            .where(
                _busy.c.org_id == org_id,
                _busy.c.resource_id.in_(resource_ids),
                _busy.c.starts_at < end,
                _busy.c.ends_at > start,
                link_blocks(_busy.c.link_id, _busy.c.resource_id),
            )
            .order_by(_busy.c.starts_at)
        ).all()
