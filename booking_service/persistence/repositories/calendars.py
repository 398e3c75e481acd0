"""uow.calendars: calendar links, the busy times read from them, pushes waiting for the
worker, ICS feeds, and the owner's listing of appointments.

The parts live in their own modules: the links (calendar_links.py), the worker's pushes and
polls (calendar_sync.py), and the feeds and the listing (calendar_feeds.py). Pushes are
written by the outbox statement (repositories/outbox.py) in the change's transaction. The row
types are importable from here too.
"""

from __future__ import annotations

from booking_service.persistence.repositories.calendar_connects import (
    CalendarConnects,
    ConnectState,
)
from booking_service.persistence.repositories.calendar_feeds import CalendarFeeds, ListedAppointment
from booking_service.persistence.repositories.calendar_links import LinkRow
from booking_service.persistence.repositories.calendar_sync import (
    CalendarSync,
    DuePoll,
    DuePush,
    PushState,
)

__all__ = [
    "CalendarRepository",
    "ConnectState",
    "DuePoll",
    "DuePush",
    "LinkRow",
    "ListedAppointment",
    "PushState",
]


class CalendarRepository(CalendarSync, CalendarFeeds, CalendarConnects):
    """Links, busy times, pushes, feeds, OAuth connections under way and the listing."""
