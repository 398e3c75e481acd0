"""A calendar provider: a place where a resource's appointments are shown and its owner's busy
times are read. CalDAV today (adapters/caldav.py); each provider is one adapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class CalendarFailure(Exception):
    """The calendar could not be reached or read; the message says why, fit for
    `calendar status` (no credentials, no response bodies). Its time is never taken as free."""


class NeedsReconnect(CalendarFailure):
    """The provider refused the credentials or the grant: nothing will work until the owner
    links the calendar again."""


@dataclass(frozen=True)
class CalendarAccess:
    """How to reach one linked calendar (the password opened just before use)."""

    url: str
    username: str | None
    password: str | None = field(repr=False)
    timeout_s: int
    allow_private: bool


@dataclass(frozen=True)
class BusyQuery:
    """Which busy times to read: [start, end), all-day events read in `timezone`, our own
    events (UIDs ending in `own_suffix`) left out."""

    start: datetime
    end: datetime
    timezone: str
    own_suffix: str


Busy = list[tuple[datetime, datetime]]


class CalendarProvider(Protocol):
    """Every method raises CalendarFailure (NeedsReconnect when the credentials are refused)."""

    def check(self, access: CalendarAccess) -> None:
        """Succeed only if `access` reaches a calendar we may read (and write)."""

    def put(self, access: CalendarAccess, uid: str, document: bytes) -> None:
        """Create or replace the event with this UID: a retry never makes a second one."""

    def remove(self, access: CalendarAccess, uid: str) -> None:
        """Delete the event with this UID; one already gone counts as deleted."""

    def read_busy(self, access: CalendarAccess, query: BusyQuery) -> Busy:
        """The merged busy ranges in the query's window, recurrences expanded."""
