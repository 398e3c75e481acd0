"""The CalendarProvider port (ports/calendars.py) over CalDAV: checks and pushes through
caldav.CalDavCalendar in this process, bounded by their deadline; each read in a killable
child process (calendar_process.py). Its own module: the child imports caldav.py, and caldav.py
need not know the child."""

from __future__ import annotations

from booking_service.adapters.caldav import CalDavCalendar
from booking_service.adapters.calendar_process import read_busy
from booking_service.ports.calendars import BusyQuery, BusyRead, CalendarAccess, PushedEvent


class CalDavProvider:
    """The CalendarProvider port (ports/calendars.py) over CalDAV: pushes and checks in this
    process, bounded by their deadline; each read in a killable child process
    (calendar_process.py)."""

    chooses_ids = False

    def _open(self, access: CalendarAccess) -> CalDavCalendar:
        return CalDavCalendar(
            access.url,
            access.username,
            access.password,
            timeout_s=access.timeout_s,
            allow_private=access.allow_private,
        )

    def check(self, access: CalendarAccess) -> None:
        with self._open(access) as calendar:
            calendar.check()

    def put(self, access: CalendarAccess, event: PushedEvent) -> None:
        # The event lives at <collection>/<UID>.ics: the address is the idempotency key.
        with self._open(access) as calendar:
            calendar.put(event.uid, event.document)

    def remove(self, access: CalendarAccess, uid: str, remote_id: str | None) -> None:
        with self._open(access) as calendar:
            calendar.remove(uid)

    def read_busy(self, access: CalendarAccess, query: BusyQuery) -> BusyRead:
        return BusyRead(read_busy(access, query, deadline_s=3 * access.timeout_s))
