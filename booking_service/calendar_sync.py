"""The worker's calendar part: push changed appointments to linked calendars, read their busy
times back.

Push: one push per transaction. The worker claims the oldest pending push of a link and
appointment (row-locked, SKIP LOCKED), reads the appointment as it is now, makes the calendar
show exactly that (its VEVENT at `<collection>/<UID>.ics`, or no event when it is cancelled or
moved to another resource) and marks the pushes that state covered as done. A failure keeps the
push pending and retries it later (5 s, 30 s, 2 min, 10 min, then every 30 min, ±10 %), for as
long as the link exists: a calendar that comes back converges, with no duplicate (same URL).

Poll: each blocking link is read every CALENDAR_POLL_SECONDS from a day ago to the
organization's horizon; its busy times are replaced in one transaction. A failed poll keeps the
last busy times and records the error; the link's staleness (booking path) decides what they
are still worth.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from booking_service import calendars
from booking_service.adapters.caldav import CalDavCalendar, CalendarUnreachable
from booking_service.config import Settings
from booking_service.repositories.calendars import DuePush, LinkRow, PushState
from booking_service.secrets_box import SecretBox, SecretsUnavailable
from booking_service.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases.times import utc_now

log = logging.getLogger(__name__)

PUSH_RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
)
# A poll reads from a little in the past (an event in progress) to the horizon and a day more
# (a long appointment near the horizon, all-day events in any zone).
POLL_MARGIN = timedelta(days=1)


def retry_delay(attempt: int, jitter: float = 1.0) -> timedelta:
    """The wait after failed attempt number `attempt` (1-based); the last step repeats."""
    return PUSH_RETRY_DELAYS[min(attempt, len(PUSH_RETRY_DELAYS)) - 1] * jitter


def _jitter() -> float:
    return random.uniform(0.9, 1.1)  # noqa: S311 - spreading retries, not a secret


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

    def sync_due(self, stopped: Callable[[], bool] = lambda: False) -> int:
        """Push every due change and poll every due calendar; returns how many of each were
        attempted."""
        done = 0
        while not stopped() and self.push_one():
            done += 1
        while not stopped() and self.poll_one():
            done += 1
        return done

    def _open(self, link: LinkRow, box: SecretBox) -> CalDavCalendar:
        password = box.open_or_plain(link.password) if link.password else None
        return CalDavCalendar(
            link.url,
            link.username,
            password,
            timeout_s=self._settings.calendar_timeout_s,
            allow_private=self._settings.calendar_allow_private_targets,
        )

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
            except (CalendarUnreachable, SecretsUnavailable) as exc:
                retry_at = now + retry_delay(due.attempts + 1, self._jitter())
                uow.calendars.push_failed(due, str(exc), retry_at, now)
                log.warning(
                    "calendar push failed: link=%s attempt=%d error=%s",
                    due.link.id,
                    due.attempts + 1,
                    exc,
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
        with self._open(due.link, box) as calendar:
            if wanted:
                calendar.put(
                    entry.uid, calendars.event_document(entry, ZoneInfo(state.timezone), now)
                )
            else:
                calendar.remove(entry.uid)

    # --- polls ----------------------------------------------------------------------------------

    def poll_one(self) -> bool:
        """Read one due calendar's busy times; False when none is due."""
        with self._uow() as uow:
            now = self._clock()
            due = uow.calendars.claim_poll(
                now - timedelta(seconds=self._settings.calendar_poll_seconds)
            )
            if due is None:
                return False
            zone = ZoneInfo(due.timezone)
            start = now - POLL_MARGIN
            end = now + timedelta(days=due.horizon_days) + POLL_MARGIN
            try:
                with self._open(due.link, uow.secrets) as calendar:
                    found = calendar.events_between(start, end)
                ranges = calendars.busy_ranges(found, zone, start, end)
            except (CalendarUnreachable, SecretsUnavailable) as exc:
                uow.calendars.poll_failed(due.link, str(exc), now)
                log.warning("calendar poll failed: link=%s error=%s", due.link.id, exc)
            except Exception as exc:
                # An event we cannot read must not stop the poll loop: the link goes stale and
                # its status says why.
                reason = f"an event could not be read ({type(exc).__name__})"
                uow.calendars.poll_failed(due.link, reason, now)
                log.warning("calendar poll failed: link=%s", due.link.id, exc_info=True)
            else:
                uow.calendars.replace_busy(due.link, ranges, now)
                log.info("calendar poll: link=%s busy_ranges=%d", due.link.id, len(ranges))
            uow.commit()
        return True
