"""A calendar provider: a place where a resource's appointments are shown and its owner's busy
times are read. CalDAV (adapters/caldav.py), Google Calendar (adapters/google_calendar.py),
Microsoft 365 (adapters/microsoft_calendar.py), a secret iCal address (adapters/ics_feed.py);
each provider is one adapter."""

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


class Throttled(CalendarFailure):
    """The provider asked us to slow down (429, 503, a quota): try again no sooner than
    `retry_after_s` seconds (its Retry-After, or our own backoff when it gave none)."""

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class CalendarAccess:
    """How to reach one linked calendar (the secret opened just before use): a CalDAV URL with
    its user name and password, an OAuth refresh token and calendar id, or an iCal address.

    `state` is what the provider's last good read left (a sync token, an ETag). A provider
    that is given a new secret (a rotated refresh token) appends it to `renewed`; the caller
    seals and keeps it."""

    url: str
    username: str | None
    password: str | None = field(repr=False)
    timeout_s: int
    allow_private: bool
    calendar_id: str | None = None
    state: str | None = field(default=None, repr=False)
    renewed: list[str] = field(default_factory=list, repr=False, compare=False)


@dataclass(frozen=True)
class BusyQuery:
    """Which busy times to read: [start, end), all-day events read in `timezone`, our own
    events (UIDs ending in `own_suffix`) left out."""

    start: datetime
    end: datetime
    timezone: str
    own_suffix: str


Busy = list[tuple[datetime, datetime]]


@dataclass(frozen=True)
class BusyRead:
    """What a read found: the merged busy ranges, or None when the calendar is unchanged
    since `CalendarAccess.state` (keep the ranges last stored), and the state to give back
    next time."""

    ranges: Busy | None
    state: str | None = None


@dataclass(frozen=True)
class PushedEvent:
    """One appointment as a calendar shows it: the iCalendar object (CalDAV) and the same in
    fields (JSON APIs), times in the organization's zone. `remote_id` is what an earlier put
    returned, if the provider chose the event's id."""

    uid: str
    org_id: int
    reference: str
    document: bytes = field(repr=False)
    summary: str
    description: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    tentative: bool
    remote_id: str | None = None


class CalendarProvider(Protocol):
    """Every method raises CalendarFailure (NeedsReconnect when the credentials are refused,
    Throttled when asked to wait)."""

    # True when the provider chooses event ids (`put` returns them): then only a put with the
    # same UID finds an event whose creation's answer was lost.
    chooses_ids: bool

    def check(self, access: CalendarAccess) -> None:
        """Succeed only if `access` reaches a calendar we may read (and write)."""

    def put(self, access: CalendarAccess, event: PushedEvent) -> str | None:
        """Create or replace the event: a retry never makes a second one. Returns the id the
        provider gave it, to keep, when the provider chooses ids (else None)."""

    def remove(self, access: CalendarAccess, uid: str, remote_id: str | None) -> None:
        """Delete the event with this UID (or provider id); one already gone counts as
        deleted."""

    def read_busy(self, access: CalendarAccess, query: BusyQuery) -> BusyRead:
        """The merged busy ranges in the query's window, recurrences expanded."""
