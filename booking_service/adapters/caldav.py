"""An owner's CalDAV calendar (RFC 4791) through the `caldav` package.

The URL is the calendar collection itself. An appointment's event lives at
`<collection>/<UID>.ics`: putting it again (a retry, a move) replaces that one resource, so a
retry can never make a second event; removing it is a DELETE that counts "already gone" as done.
Every failure is raised as CalendarUnreachable with a short reason fit for `calendar status`
(no credentials, no response bodies).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from urllib.parse import quote

import icalendar
from caldav.calendarobjectresource import Event
from caldav.collection import Calendar
from caldav.davclient import DAVClient
from caldav.lib import error as caldav_error

from booking_service.adapters.webhooks import UnsafeTarget, check_target


class CalendarUnreachable(Exception):
    """The calendar server could not be reached, refused us, or answered nonsense."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, caldav_error.AuthorizationError):
        return "the calendar server refused the credentials (401/403)"
    if isinstance(exc, caldav_error.NotFoundError):
        return "no calendar at that URL (404)"
    if isinstance(exc, caldav_error.DAVError):
        # The class says which request failed (PutError, ReportError...); its text may carry a
        # response body, which is not ours to store.
        return f"the calendar server answered an error ({type(exc).__name__})"
    if isinstance(exc, UnsafeTarget):
        return str(exc)
    if type(exc).__name__ == "TooManyRedirects":
        return "the calendar server answered with a redirect (give the calendar's own URL)"
    if isinstance(exc, ValueError | KeyError | TypeError | UnicodeError):
        return f"the calendar server sent something that could not be read ({type(exc).__name__})"
    return f"the calendar server could not be reached ({type(exc).__name__})"


class CalDavCalendar:
    """One calendar collection. Use as a context manager: the HTTP session is closed after."""

    def __init__(
        self,
        url: str,
        username: str | None,
        password: str | None,
        *,
        timeout_s: int,
        allow_private: bool,
    ):
        self.url = url if url.endswith("/") else url + "/"
        self._username = username
        self._password = password
        self._timeout_s = timeout_s
        self._allow_private = allow_private
        self._client: DAVClient | None = None
        self._calendar: Calendar | None = None

    def __enter__(self) -> CalDavCalendar:
        try:
            # The same rule as webhooks: no loopback or private address unless allowed, so a
            # link cannot be used to reach the service's own network.
            check_target(self.url, allow_private=self._allow_private)
            self._client = DAVClient(
                url=self.url,
                username=self._username,
                password=self._password,
                timeout=self._timeout_s,
                # The URL is the collection itself: no DNS-based discovery.
                enable_rfc6764=False,
            )
            # Like webhooks, no redirect is followed: a redirect could lead past the address
            # check above to the service's own network.
            self._client.session.max_redirects = 0
            self._calendar = self._client.calendar(url=self.url)
        except Exception as exc:
            raise CalendarUnreachable(_reason(exc)) from exc
        return self

    def __exit__(self, *exc_info) -> None:
        if self._client is not None:
            self._client.close()

    @contextmanager
    def _talking(self) -> Iterator[Calendar]:
        assert self._calendar is not None, "use CalDavCalendar as a context manager"
        try:
            yield self._calendar
        except CalendarUnreachable:
            raise
        except Exception as exc:
            raise CalendarUnreachable(_reason(exc)) from exc

    def check(self) -> None:
        """Raise CalendarUnreachable unless the URL is a calendar we may read."""
        with self._talking() as calendar:
            calendar.get_supported_components()

    def _object_url(self, uid: str) -> str:
        return self.url + quote(uid, safe="") + ".ics"

    def put(self, uid: str, document: bytes) -> None:
        """Create or replace the event with this UID (idempotent)."""
        with self._talking() as calendar:
            event = Event(
                self._client, url=self._object_url(uid), data=document.decode(), parent=calendar
            )
            # Stored as given: SEQUENCE is ours to set, not the library's to bump.
            event.save(increase_seqno=False, only_this_recurrence=False)

    def remove(self, uid: str) -> None:
        """Delete the event with this UID; one that is not there counts as deleted."""
        with self._talking() as calendar:
            Event(self._client, url=self._object_url(uid), parent=calendar).delete()

    def events_between(self, start: datetime, end: datetime) -> list[icalendar.Calendar]:
        """Every event object overlapping [start, end), recurring ones unexpanded (the caller
        expands them, in the organization's zone)."""
        with self._talking() as calendar:
            found: object = calendar.search(start=start, end=end, event=True, expand=False)
            assert isinstance(found, list)  # a synchronous client answers, not a coroutine
            return [item.icalendar_instance for item in found]
