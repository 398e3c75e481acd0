"""A calendar's secret iCal address (Google's "secret address in iCal format", Outlook's
published calendar, iCloud's public calendar, a booking site's feed) as a read-only
CalendarProvider: its events block, nothing is ever written to it. Each read is a conditional
GET in a killable child process (calendar_process.py, ics_download.py)."""

from __future__ import annotations

from datetime import timedelta

from booking_service.adapters.calendar_process import read_feed
from booking_service.domain.times import utc_now
from booking_service.ports.calendars import (
    BusyQuery,
    BusyRead,
    CalendarAccess,
    CalendarFailure,
    PushedEvent,
)


class IcsFeed:
    """The CalendarProvider port over a secret iCal address: read only."""

    chooses_ids = False

    def check(self, access: CalendarAccess) -> None:
        # A first read proves the address works and is a calendar.
        read_feed(access, _probe(), deadline_s=3 * access.timeout_s)

    def put(self, access: CalendarAccess, event: PushedEvent) -> None:
        raise CalendarFailure("an iCal address cannot be written to")

    def remove(self, access: CalendarAccess, uid: str, remote_id: str | None) -> None:
        raise CalendarFailure("an iCal address cannot be written to")

    def read_busy(self, access: CalendarAccess, query: BusyQuery) -> BusyRead:
        return read_feed(access, query, deadline_s=3 * access.timeout_s)


def _probe() -> BusyQuery:
    now = utc_now()
    return BusyQuery(now, now + timedelta(days=1), "UTC", own_suffix="@booking-service")
