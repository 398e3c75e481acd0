"""The worker's calendar part: push changed appointments to linked calendars, read their busy
times back.

Push: one push per transaction. The worker claims the oldest pending push of a link and
appointment (row-locked, SKIP LOCKED), reads the appointment as it is now, makes the calendar
show exactly that (its VEVENT at `<collection>/<UID>.ics`, or no event when it is cancelled or
moved to another resource) and marks the pushes that state covered as done. A failure keeps the
push pending and retries it later (5 s, 30 s, 2 min, 10 min, then every 30 min, ±10 %), for as
long as the link exists: a calendar that comes back converges, with no duplicate (same URL).

Poll: each blocking link is read every CALENDAR_POLL_SECONDS from a day ago to the
organization's horizon. The claim is a short transaction of its own (it moves the link's
`last_poll_at`), the server is read and the events expanded with no transaction open (a
booking inserting a push for that link never waits on a poll), and the busy times are then
replaced in one transaction. A failed poll keeps the last busy times and records the error; the
link's staleness (booking path) decides what they are still worth.

One slow or hostile server must not hold up the others (#24):
- a read runs in a child process killed at its deadline (adapters/calendar_process.py), with
  its memory and CPU capped, and recurrences expanded by a bounded iterator (recurrence.py);
- every push exchange has an overall deadline (3 times CALENDAR_TIMEOUT_S) checked as the
  answer arrives, with no thread left behind; a push that cannot reach its server defers every
  waiting push of that link;
- a link whose polls keep failing backs off exponentially (up to MAX_POLL_BACKOFF), and its
  status says why and when it is tried next;
- the worker runs CALENDAR_CONCURRENCY of these at once, at most one per organization
  (`fair_round`): another organization's eight slow servers take one slot, not all of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from booking_service.config import Settings
from booking_service.domain import calendar_events, outbox
from booking_service.domain.times import retry_jitter, utc_now
from booking_service.persistence.repositories.calendars import DuePoll, DuePush, LinkRow, PushState
from booking_service.persistence.secrets_box import SecretBox, SecretsUnavailable
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.ports.calendars import (
    BusyQuery,
    CalendarAccess,
    CalendarFailure,
    CalendarProvider,
    NeedsReconnect,
    PushedEvent,
    Throttled,
)
from booking_service.use_cases.fairness import OrgTurns

log = logging.getLogger(__name__)

PUSH_RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
)
PUSH_ROUND_S = 60
# Links whose refusal means "the owner must connect again" (a revoked OAuth grant). A CalDAV
# server refusing its password keeps being retried with backoff, as before: a flaky server's
# 401 must not switch a link off.
RECONNECTABLE = ("google", "microsoft")
# Done pushes are kept this long (to look at), then deleted, at most once an hour.
KEEP_DONE_PUSHES = timedelta(days=7)
FORGET_EVERY = timedelta(hours=1)
# A poll reads from a little in the past (an event in progress) to the horizon and a day more
# (a long appointment near the horizon, all-day events in any zone).
POLL_MARGIN = timedelta(days=1)
# A link whose polls fail waits CALENDAR_POLL_SECONDS * 2^(failures - 1) before the next, at
# most this long.
MAX_POLL_BACKOFF = timedelta(hours=1)


def retry_delay(attempt: int, jitter: float = 1.0) -> timedelta:
    """The wait after failed attempt number `attempt` (1-based); the last step repeats."""
    return PUSH_RETRY_DELAYS[min(attempt, len(PUSH_RETRY_DELAYS)) - 1] * jitter


class CalendarSync:
    """Pushes and polls what is due. `clock` decides what is due (tests move it)."""

    def __init__(
        self,
        uow_factory: Callable[[], AbstractUnitOfWork],
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utc_now,
        jitter: Callable[[], float] = retry_jitter,
        providers: Mapping[str, CalendarProvider] | None = None,
    ):
        self._uow = uow_factory
        self._settings = settings
        self._clock = clock
        self._jitter = jitter
        if providers is None:
            # The front ends pass their adapters; this default serves tests and the CLI.
            from booking_service.adapters.registry import calendar_providers

            providers = calendar_providers(settings)
        self._providers = providers
        self._forgot_at: datetime | None = None
        # Organizations with a read or push in flight in this process (fair_round's fairness).
        self._turns = OrgTurns()

    def sync_due(self, stopped: Callable[[], bool] = lambda: False) -> int:
        """Poll every due calendar, then push due changes (for up to PUSH_ROUND_S), one at a
        time; returns how many were attempted."""
        self._forget_done()
        done = 0
        while not stopped() and self.poll_one():
            done += 1
        ends = time.monotonic() + PUSH_ROUND_S
        while not stopped() and time.monotonic() < ends and self.push_one():
            done += 1
        return done

    def fair_round(self) -> int:
        """One read or push (reads first) of an organization with nothing in flight in this
        process; 0 when nothing such is due. The worker runs this on CALENDAR_CONCURRENCY
        threads, so one organization's slow servers hold at most one of them."""
        self._forget_done()
        return int(self.poll_one(fair=True) or self.push_one(fair=True))

    def _excluded(self, fair: bool) -> list[int]:
        return self._turns.busy() if fair else []

    @contextmanager
    def _in_flight(self, org_id: int, fair: bool) -> Iterator[bool]:
        """The organization's turn for the exchange (always, when not `fair`)."""
        if not fair:
            yield True
            return
        with self._turns.turn(org_id) as taken:
            yield taken

    def _provider(self, link: LinkRow) -> CalendarProvider:
        return self._providers[link.provider]

    def _access(self, link: LinkRow, password: str | None) -> CalendarAccess:
        return CalendarAccess(
            url=link.url,
            username=link.username,
            password=password,
            timeout_s=self._settings.calendar_timeout_s,
            allow_private=self._settings.calendar_allow_private_targets,
            calendar_id=link.calendar_id,
            state=link.sync_state,
        )

    def _keep_renewed(self, uow: AbstractUnitOfWork, link: LinkRow, access: CalendarAccess):
        """A provider that rotated the refresh token: the newest is sealed and kept."""
        if access.renewed:
            uow.calendars.update_link(link.id, password=uow.secrets.seal(access.renewed[-1]))

    def _disconnected(
        self, uow: AbstractUnitOfWork, link: LinkRow, reason: str, now: datetime
    ) -> None:
        """The grant is gone: the link is stale until connected again, and the owner is told
        once (`calendar.disconnected`)."""
        if uow.calendars.needs_reconnect(link.id, reason, now):
            uow.outbox.add_org_event(
                link.org_id,
                outbox.new_event_id(),
                outbox.CALENDAR_DISCONNECTED,
                outbox.disconnected_payload(
                    link.org_id, link.id, link.resource_id, link.provider, reason, now
                ),
            )
            log.warning("calendar link needs reconnecting: link=%s", link.id)

    def _forget_done(self) -> None:
        now = self._clock()
        if self._forgot_at is not None and now - self._forgot_at < FORGET_EVERY:
            return
        with self._uow() as uow:
            uow.calendars.forget_done_pushes(now - KEEP_DONE_PUSHES)
            uow.commit()
        self._forgot_at = now

    # --- pushes ---------------------------------------------------------------------------------

    def push_one(self, *, fair: bool = False) -> bool:
        """Bring one appointment up to date in one calendar; False when nothing is due (or,
        `fair`, nothing of an organization without a push or read in flight here)."""
        with self._uow() as uow:
            now = self._clock()
            due = uow.calendars.claim_push(now, exclude_orgs=self._excluded(fair))
            if due is None:
                return False
            with self._in_flight(due.org_id, fair) as taken:
                if not taken:
                    return False
                self._push_claimed(uow, due, now)
        return True

    def _push_claimed(self, uow: AbstractUnitOfWork, due: DuePush, now: datetime) -> None:
        state = uow.calendars.push_state(due)
        try:
            if state is not None:
                self._push(uow, due, state, now)
        except NeedsReconnect as exc:
            if due.link.provider in RECONNECTABLE:
                # Not retried: the push waits (pending) until the owner connects again.
                self._disconnected(uow, due.link, str(exc), now)
            else:
                self._push_failed(uow, due, exc, now)
        except Exception as exc:
            self._push_failed(uow, due, exc, now)
        else:
            uow.calendars.pushes_done(sorted({due.id, *(state.covered if state else [])}), now)
            if due.link.last_error is not None and due.link.consecutive_failures == 0:
                # The error was a push's (a failing poll keeps its reason until a good poll).
                uow.calendars.update_link(due.link.id, last_error=None, last_error_at=None)
            log.info("calendar push: link=%s appointment=%s", due.link.id, due.appointment_id)
        uow.commit()

    def _push_failed(
        self, uow: AbstractUnitOfWork, due: DuePush, exc: Exception, now: datetime
    ) -> None:
        """Keep the push pending, retried later (never sooner than a Retry-After)."""
        # Anything, not only an unreachable server: an unexpected error must not put
        # this push back at the head of the queue on every round.
        reason = (
            str(exc)
            if isinstance(exc, CalendarFailure | SecretsUnavailable)
            else f"the push failed ({type(exc).__name__})"
        )
        retry_at = now + retry_delay(due.attempts + 1, self._jitter())
        if isinstance(exc, Throttled) and exc.retry_after_s is not None:
            # The provider said when: never sooner.
            retry_at = max(retry_at, now + timedelta(seconds=exc.retry_after_s))
        uow.calendars.push_failed(due, reason, retry_at, now)
        if isinstance(exc, CalendarFailure):
            # Its other pushes would only wait for the same server in turn.
            uow.calendars.defer_link_pushes(due.link.id, retry_at)
        log.warning(
            "calendar push failed: link=%s attempt=%d error=%s",
            due.link.id,
            due.attempts + 1,
            reason,
            exc_info=not isinstance(exc, CalendarFailure | SecretsUnavailable),
        )

    def _push(self, uow: AbstractUnitOfWork, due: DuePush, state: PushState, now: datetime) -> None:
        entry = calendar_events.CalendarEntry(
            org_id=due.org_id,
            reference=state.reference,
            sequence=state.sequence,
            starts_at=state.starts_at,
            ends_at=state.ends_at,
            name=state.name,
            service=state.service,
            resource=state.resource,
            phone=state.phone,
            status=state.status,
            unconfirmed=state.unconfirmed,
        )
        # What this calendar should show: the event while it holds this link's resource (a
        # completed or missed one stays, as it happened); nothing once cancelled or moved away.
        wanted = state.status != "cancelled" and state.resource_id == due.link.resource_id
        zone = ZoneInfo(state.timezone)
        box: SecretBox = uow.secrets
        password = box.open_or_plain(due.link.password) if due.link.password else None
        access = self._access(due.link, password)
        provider = self._provider(due.link)
        remote_id = uow.calendars.remote_id(due.link.id, entry.uid)
        event = PushedEvent(
            uid=entry.uid,
            org_id=entry.org_id,
            reference=entry.reference,
            document=calendar_events.event_document(entry, zone, now),
            summary=calendar_events.summary(entry),
            description=calendar_events.description(entry),
            starts_at=entry.starts_at,
            ends_at=entry.ends_at,
            timezone=state.timezone,
            tentative=entry.unconfirmed,
            remote_id=remote_id,
        )
        try:
            if wanted:
                kept = provider.put(access, event)
                if kept != remote_id:
                    uow.calendars.keep_remote_id(due.link, entry.uid, kept)
            else:
                if remote_id is None and due.attempts > 0 and provider.chooses_ids:
                    # An earlier attempt may have made the event and lost the answer (so no id
                    # was kept): a create with the same idempotency key finds it, to delete.
                    remote_id = provider.put(access, event)
                    uow.calendars.keep_remote_id(due.link, entry.uid, remote_id)
                provider.remove(access, entry.uid, remote_id)
                if remote_id is not None:
                    uow.calendars.keep_remote_id(due.link, entry.uid, None)
        finally:
            self._keep_renewed(uow, due.link, access)

    # --- polls ----------------------------------------------------------------------------------

    def poll_one(self, *, fair: bool = False) -> bool:
        """Read one due calendar's busy times; False when none is due (or, `fair`, none of an
        organization without a push or read in flight here)."""
        now = self._clock()
        with self._uow() as uow:
            due = uow.calendars.claim_poll(
                now - timedelta(seconds=self._settings.calendar_poll_seconds),
                now,
                exclude_orgs=self._excluded(fair),
            )
            if due is None:
                return False
            password = None
            try:
                password = (
                    uow.secrets.open_or_plain(due.link.password) if due.link.password else None
                )
            except SecretsUnavailable as exc:
                uow.calendars.poll_failed(due.link, str(exc), now, self._backoff(due.link))
                uow.commit()
                return True
            uow.commit()  # the claim: no transaction stays open while the server is read
        with self._in_flight(due.link.org_id, fair) as taken:
            if not taken:
                # Another thread took this organization meanwhile: the claim only moved
                # last_poll_at, so let the link be due again at once.
                with self._uow() as uow:
                    uow.calendars.update_link(due.link.id, last_poll_at=due.link.last_poll_at)
                    uow.commit()
                return False
            self._read(due, password, now)
        return True

    def _backoff(self, link: LinkRow) -> datetime:
        failures = link.consecutive_failures + 1
        base = timedelta(seconds=self._settings.calendar_poll_seconds)
        wait = min(base * 2 ** min(failures - 1, 20), MAX_POLL_BACKOFF) * self._jitter()
        return self._clock() + wait

    def _read(self, due: DuePoll, password: str | None, now: datetime) -> None:
        start = now - POLL_MARGIN
        end = now + timedelta(days=due.horizon_days) + POLL_MARGIN
        query = BusyQuery(
            start=start,
            end=end,
            timezone=due.timezone,
            own_suffix=calendar_events.own_uid_suffix(due.link.org_id),
        )
        error = None
        retry_after = None
        reconnect = False
        access = self._access(due.link, password)
        try:
            found = self._provider(due.link).read_busy(access, query)
        except CalendarFailure as exc:
            error = str(exc)
            reconnect = isinstance(exc, NeedsReconnect) and due.link.provider in RECONNECTABLE
            if isinstance(exc, Throttled) and exc.retry_after_s is not None:
                retry_after = now + timedelta(seconds=exc.retry_after_s)
        except Exception as exc:
            # A bug must not stop the poll loop: the link goes stale and its status says why.
            error = f"the calendar could not be read ({type(exc).__name__})"
            log.warning("calendar poll failed: link=%s", due.link.id, exc_info=True)
        with self._uow() as uow:
            self._keep_renewed(uow, due.link, access)
            if error is None:
                uow.calendars.replace_busy(due.link, found.ranges, now, found.state)
                log.info(
                    "calendar poll: link=%s busy_ranges=%s",
                    due.link.id,
                    "unchanged" if found.ranges is None else len(found.ranges),
                )
            elif reconnect:
                uow.calendars.poll_failed(due.link, error, now)
                self._disconnected(uow, due.link, error, now)
            else:
                backoff = self._backoff(due.link)
                if retry_after is not None:
                    backoff = max(backoff, retry_after)
                uow.calendars.poll_failed(due.link, error, now, backoff)
                log.warning("calendar poll failed: link=%s error=%s", due.link.id, error)
            uow.commit()
