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

One slow or hostile server must not hold up the others: every exchange with a server has an
overall deadline (3 times CALENDAR_TIMEOUT_S; the library's timeout is per read), a push that cannot
reach its server defers every waiting push of that link, polls go before pushes, and a round
of pushes stops after PUSH_ROUND_S.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from booking_service import calendars
from booking_service.adapters.caldav import CalDavCalendar, CalendarUnreachable
from booking_service.calendars import UnreadableCalendar
from booking_service.config import Settings
from booking_service.repositories.calendars import DuePush, LinkRow, PushState
from booking_service.secrets_box import SecretBox, SecretsUnavailable
from booking_service.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases.times import utc_now

log = logging.getLogger(__name__)
T = TypeVar("T")

PUSH_RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
)
PUSH_ROUND_S = 60
# Done pushes are kept this long (to look at), then deleted, at most once an hour.
KEEP_DONE_PUSHES = timedelta(days=7)
FORGET_EVERY = timedelta(hours=1)
# A poll reads from a little in the past (an event in progress) to the horizon and a day more
# (a long appointment near the horizon, all-day events in any zone).
POLL_MARGIN = timedelta(days=1)


def retry_delay(attempt: int, jitter: float = 1.0) -> timedelta:
    """The wait after failed attempt number `attempt` (1-based); the last step repeats."""
    return PUSH_RETRY_DELAYS[min(attempt, len(PUSH_RETRY_DELAYS)) - 1] * jitter


def _jitter() -> float:
    return random.uniform(0.9, 1.1)  # noqa: S311 - spreading retries, not a secret


def within(seconds: float, work: Callable[[], T]) -> T:
    """`work()`, or CalendarUnreachable when it has not finished after `seconds` (a server that
    trickles its answer defeats a per-read timeout). The abandoned call runs on in a daemon
    thread until its own timeouts end it; it holds no database transaction."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as exc:  # handed to the caller below
            outcome.append((False, exc))

    thread = threading.Thread(target=run, daemon=True, name="calendar-exchange")
    thread.start()
    thread.join(seconds)
    if not outcome:
        raise CalendarUnreachable(f"the calendar server did not finish within {seconds:.0f} s")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


class CalendarSync:
    """Pushes and polls what is due. `clock` decides what is due (tests move it)."""

    def __init__(
        self,
        uow_factory: Callable[[], AbstractUnitOfWork],
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utc_now,
        jitter: Callable[[], float] = _jitter,
    ):
        self._uow = uow_factory
        self._settings = settings
        self._clock = clock
        self._jitter = jitter
        self._forgot_at: datetime | None = None

    @property
    def _deadline_s(self) -> float:
        return 3 * self._settings.calendar_timeout_s

    def sync_due(self, stopped: Callable[[], bool] = lambda: False) -> int:
        """Poll every due calendar, then push due changes (for up to PUSH_ROUND_S); returns
        how many were attempted."""
        self._forget_done()
        done = 0
        while not stopped() and self.poll_one():
            done += 1
        ends = time.monotonic() + PUSH_ROUND_S
        while not stopped() and time.monotonic() < ends and self.push_one():
            done += 1
        return done

    def _open(self, link: LinkRow, box: SecretBox) -> CalDavCalendar:
        return self._open_with(link, box.open_or_plain(link.password) if link.password else None)

    def _open_with(self, link: LinkRow, password: str | None) -> CalDavCalendar:
        return CalDavCalendar(
            link.url,
            link.username,
            password,
            timeout_s=self._settings.calendar_timeout_s,
            allow_private=self._settings.calendar_allow_private_targets,
        )

    def _forget_done(self) -> None:
        now = self._clock()
        if self._forgot_at is not None and now - self._forgot_at < FORGET_EVERY:
            return
        with self._uow() as uow:
            uow.calendars.forget_done_pushes(now - KEEP_DONE_PUSHES)
            uow.commit()
        self._forgot_at = now

    # --- pushes ---------------------------------------------------------------------------------

    def push_one(self) -> bool:
        """Bring one appointment up to date in one calendar; False when nothing is due."""
        with self._uow() as uow:
            now = self._clock()
            due = uow.calendars.claim_push(now)
            if due is None:
                return False
            state = uow.calendars.push_state(due)
            try:
                if state is not None:
                    self._push(due, state, uow.secrets, now)
            except Exception as exc:
                # Anything, not only an unreachable server: an unexpected error must not put
                # this push back at the head of the queue on every round.
                reason = (
                    str(exc)
                    if isinstance(exc, CalendarUnreachable | SecretsUnavailable)
                    else f"the push failed ({type(exc).__name__})"
                )
                retry_at = now + retry_delay(due.attempts + 1, self._jitter())
                uow.calendars.push_failed(due, reason, retry_at, now)
                if isinstance(exc, CalendarUnreachable):
                    # Its other pushes would only wait for the same server in turn.
                    uow.calendars.defer_link_pushes(due.link.id, retry_at)
                log.warning(
                    "calendar push failed: link=%s attempt=%d error=%s",
                    due.link.id,
                    due.attempts + 1,
                    reason,
                    exc_info=not isinstance(exc, CalendarUnreachable | SecretsUnavailable),
                )
            else:
                uow.calendars.pushes_done(sorted({due.id, *(state.covered if state else [])}), now)
                if due.link.last_error is not None:
                    uow.calendars.update_link(due.link.id, last_error=None, last_error_at=None)
                log.info("calendar push: link=%s appointment=%s", due.link.id, due.appointment_id)
            uow.commit()
        return True

    def _push(self, due: DuePush, state: PushState, box: SecretBox, now: datetime) -> None:
        entry = calendars.CalendarEntry(
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
        document = calendars.event_document(entry, ZoneInfo(state.timezone), now)
        opened = self._open(due.link, box)

        def exchange() -> None:
            with opened as calendar:
                if wanted:
                    calendar.put(entry.uid, document)
                else:
                    calendar.remove(entry.uid)

        within(self._deadline_s, exchange)

    # --- polls ----------------------------------------------------------------------------------

    def poll_one(self) -> bool:
        """Read one due calendar's busy times; False when none is due."""
        now = self._clock()
        with self._uow() as uow:
            due = uow.calendars.claim_poll(
                now - timedelta(seconds=self._settings.calendar_poll_seconds), now
            )
            if due is None:
                return False
            password = None
            try:
                password = (
                    uow.secrets.open_or_plain(due.link.password) if due.link.password else None
                )
            except SecretsUnavailable as exc:
                uow.calendars.poll_failed(due.link, str(exc), now)
                uow.commit()
                return True
            uow.commit()  # the claim: no transaction stays open while the server is read
        zone = ZoneInfo(due.timezone)
        start = now - POLL_MARGIN
        end = now + timedelta(days=due.horizon_days) + POLL_MARGIN
        opened = self._open_with(due.link, password)

        def read() -> list[tuple[datetime, datetime]]:
            with opened as calendar:
                found = calendar.events_between(start, end)
            return calendars.busy_ranges(
                found, zone, start, end, own_suffix=calendars.own_uid_suffix(due.link.org_id)
            )

        error = None
        try:
            ranges = within(self._deadline_s, read)
        except (CalendarUnreachable, UnreadableCalendar) as exc:
            error = str(exc)
        except Exception as exc:
            # A bug must not stop the poll loop: the link goes stale and its status says why.
            error = f"the calendar could not be read ({type(exc).__name__})"
            log.warning("calendar poll failed: link=%s", due.link.id, exc_info=True)
        with self._uow() as uow:
            if error is None:
                uow.calendars.replace_busy(due.link, ranges, now)
                log.info("calendar poll: link=%s busy_ranges=%d", due.link.id, len(ranges))
            else:
                uow.calendars.poll_failed(due.link, error, now)
                log.warning("calendar poll failed: link=%s error=%s", due.link.id, error)
            uow.commit()
        return True
