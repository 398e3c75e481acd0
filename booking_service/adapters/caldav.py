"""An owner's CalDAV calendar (RFC 4791), spoken over httpx.

The URL is the calendar collection itself. An appointment's event lives at
`<collection>/<UID>.ics`: putting it again (a retry, a move) replaces that one resource, so a
retry can never make a second event; removing it is a DELETE that counts "already gone" as done.

Why not the `caldav` package (it served until #24): it resolves the server's name again for
every request, so a DNS answer that changed after our address check (rebinding) reached an
internal address; and its search filters every time-range answer on the client, expanding each
recurrence with no budget: one `FREQ=SECONDLY` event filled a worker with gigabytes. Here:
- every request goes to the address `check_target` checked (Host and TLS name kept), with no
  redirects followed;
- a read is one REPORT calendar-query whose answer is read as a stream and cut off past
  `max_bytes`; events are returned unexpanded (recurrence.py expands them, bounded);
- an event the server lists but does not deliver (no calendar-data, or a non-200 status) fails
  the read: a time we could not read is never taken as free.
Every failure is CalendarUnreachable (the server) or UnreadableCalendar (what it sent), with a
short reason fit for `calendar status` (no credentials, no response bodies).
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import httpx
import icalendar

from booking_service.adapters.webhooks import Target, UnsafeTarget, check_target
from booking_service.domain.recurrence import UnreadableCalendar
from booking_service.ports.calendars import (
    CalendarFailure,
    NeedsReconnect,
)

# What one read may download: far more than any real diary's events over its horizon.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
USER_AGENT = "booking_service-calendar/2"
_NS = {"d": "DAV:", "c": "urn:ietf:params:xml:ns:caldav"}
_PROPFIND = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
    "<d:prop><d:resourcetype/><c:supported-calendar-component-set/></d:prop></d:propfind>"
)


class CalendarUnreachable(CalendarFailure):
    """The calendar server could not be reached, refused us, or answered nonsense."""


class CredentialsRefused(CalendarUnreachable, NeedsReconnect):
    """The server answered 401 or 403: the link needs new credentials."""


def _query(start: datetime, end: datetime) -> str:
    def stamp(at: datetime) -> str:
        return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")

    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
        "<d:prop><d:getetag/><c:calendar-data/></d:prop>"
        '<c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">'
        f'<c:time-range start="{stamp(start)}" end="{stamp(end)}"/>'
        "</c:comp-filter></c:comp-filter></c:filter></c:calendar-query>"
    )


def _status_reason(status: int) -> str:
    if status in (401, 403):
        return "the calendar server refused the credentials (401/403)"
    if status == 404:
        return "no calendar at that URL (404)"
    if 300 <= status < 400:
        return "the calendar server answered with a redirect (give the calendar's own URL)"
    return f"the calendar server answered an error (HTTP {status})"


def _failure(status: int) -> CalendarUnreachable:
    reason = _status_reason(status)
    return CredentialsRefused(reason) if status in (401, 403) else CalendarUnreachable(reason)


class CalDavCalendar:
    """One calendar collection. Use as a context manager: the connection is closed after.

    `deadline_s` bounds each exchange as a whole (connect, request, the whole answer), checked
    between the chunks of the answer: a server that trickles cannot hold it longer than the
    deadline plus one read timeout, and no thread is left behind."""

    def __init__(
        self,
        url: str,
        username: str | None,
        password: str | None,
        *,
        timeout_s: int,
        allow_private: bool,
        deadline_s: float | None = None,
        max_bytes: int = MAX_RESPONSE_BYTES,
    ):
        self.url = url if url.endswith("/") else url + "/"
        self._username = username
        self._password = password
        self._timeout_s = timeout_s
        self._deadline_s = deadline_s if deadline_s is not None else 3 * timeout_s
        self._allow_private = allow_private
        self._max_bytes = max_bytes
        self._target: Target | None = None
        self._client: httpx.Client | None = None
        self._auth: httpx.Auth | None = None

    def __enter__(self) -> CalDavCalendar:
        try:
            # The same rule as webhooks: no loopback or private address unless allowed, and the
            # connection goes to the very address checked (a second lookup could rebind).
            self._target = check_target(self.url, allow_private=self._allow_private)
        except UnsafeTarget as exc:
            raise CalendarUnreachable(str(exc)) from None
        if self._username is not None or self._password is not None:
            self._auth = httpx.BasicAuth(self._username or "", self._password or "")
        self._client = httpx.Client(timeout=self._timeout_s, follow_redirects=False)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._client is not None:
            self._client.close()

    # --- one exchange ---------------------------------------------------------------------------

    def _pinned(self, url: str) -> str:
        """`url` (on the calendar's host) with the checked address in place of the name."""
        assert self._target is not None, "use CalDavCalendar as a context manager"
        pinned = urlsplit(self._target.url)
        return pinned._replace(path=urlsplit(url).path).geturl()

    def _exchange(
        self, method: str, url: str, body: str | bytes | None = None, headers: dict | None = None
    ) -> tuple[int, bytes]:
        """(status, body) of one request; the body cut at max_bytes raises, and so does the
        deadline. Digest authentication is answered when the server asks for it."""
        assert self._client is not None and self._target is not None
        started = time.monotonic()
        sent = {"host": self._target.host_header, "user-agent": USER_AGENT, **(headers or {})}
        extensions = (
            {"sni_hostname": self._target.sni_hostname} if self._target.sni_hostname else None
        )
        for _ in range(2):
            try:
                request = self._client.build_request(
                    method, self._pinned(url), content=body, headers=sent, extensions=extensions
                )
                response = self._client.send(request, auth=self._auth, stream=True)
            except httpx.TimeoutException:
                raise CalendarUnreachable(
                    f"the calendar server did not answer within {self._timeout_s} s"
                ) from None
            except httpx.HTTPError as exc:
                raise CalendarUnreachable(
                    f"the calendar server could not be reached ({type(exc).__name__})"
                ) from None
            try:
                challenge = response.headers.get("www-authenticate", "")
                if (
                    response.status_code == 401
                    and challenge.lower().startswith("digest")
                    and not isinstance(self._auth, httpx.DigestAuth)
                    and self._username is not None
                ):
                    self._auth = httpx.DigestAuth(self._username, self._password or "")
                    continue
                return response.status_code, self._read(response, started)
            finally:
                response.close()
        raise _failure(401)

    def _read(self, response: httpx.Response, started: float) -> bytes:
        chunks: list[bytes] = []
        received = 0
        try:
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received > self._max_bytes:
                    raise UnreadableCalendar(
                        f"the calendar sent more than {self._max_bytes // (1024 * 1024)} MB"
                    )
                if time.monotonic() - started > self._deadline_s:
                    raise CalendarUnreachable(
                        f"the calendar server did not finish within {self._deadline_s:.0f} s"
                    )
                chunks.append(chunk)
        except httpx.TimeoutException:
            raise CalendarUnreachable(
                f"the calendar server stopped answering for {self._timeout_s} s"
            ) from None
        except httpx.HTTPError as exc:
            raise CalendarUnreachable(
                f"the calendar server's answer broke off ({type(exc).__name__})"
            ) from None
        return b"".join(chunks)

    # --- what the worker and the link check do --------------------------------------------------

    def check(self) -> None:
        """Raise CalendarUnreachable unless the URL is a calendar collection we may read."""
        status, body = self._exchange(
            "PROPFIND",
            self.url,
            _PROPFIND,
            {"depth": "0", "content-type": "application/xml; charset=utf-8"},
        )
        if status != 207:
            raise _failure(status)
        try:
            root = ET.fromstring(body)  # noqa: S314 - expat 2.4+ limits entity expansion
        except ET.ParseError:
            raise CalendarUnreachable("the calendar server answered something unreadable") from None
        if root.find(".//d:resourcetype/c:calendar", _NS) is None:
            raise CalendarUnreachable("the URL is not a calendar (no CalDAV calendar there)")

    def _object_url(self, uid: str) -> str:
        return self.url + quote(uid, safe="") + ".ics"

    def put(self, uid: str, document: bytes) -> None:
        """Create or replace the event with this UID (idempotent)."""
        status, _ = self._exchange(
            "PUT", self._object_url(uid), document, {"content-type": "text/calendar; charset=utf-8"}
        )
        if not 200 <= status < 300:
            raise _failure(status)

    def remove(self, uid: str) -> None:
        """Delete the event with this UID; one that is not there counts as deleted."""
        status, _ = self._exchange("DELETE", self._object_url(uid))
        if not (200 <= status < 300 or status in (404, 410)):
            raise _failure(status)

    def events_between(self, start: datetime, end: datetime) -> list[icalendar.Calendar]:
        """Every event object the server says overlaps [start, end), recurring ones unexpanded.
        Raises UnreadableCalendar when the answer is too large, unreadable, or lists an event
        it does not deliver."""
        status, body = self._exchange(
            "REPORT",
            self.url,
            _query(start, end),
            {"depth": "1", "content-type": "application/xml; charset=utf-8"},
        )
        if status != 207:
            raise _failure(status)
        return parse_multistatus(body)


def parse_multistatus(body: bytes) -> list[icalendar.Calendar]:
    """The calendar objects of a calendar-query answer. Every listed object must come with its
    data: one missing (a 404 inside the 207, or no calendar-data) fails the read."""
    try:
        root = ET.fromstring(body)  # noqa: S314 - expat 2.4+ limits entity expansion
    except ET.ParseError:
        raise UnreadableCalendar("the calendar's answer is not readable XML") from None
    found = []
    for response in root.findall("d:response", _NS):
        href = (response.findtext("d:href", default="", namespaces=_NS) or "").strip()
        name = href.rstrip("/").rsplit("/", 1)[-1][:80] or "(no name)"
        if href.endswith("/") and response.find(".//c:calendar-data", _NS) is None:
            continue  # the collection itself, which some servers list
        data = None
        for propstat in response.findall("d:propstat", _NS):
            code = (propstat.findtext("d:status", default="", namespaces=_NS) or "").split()
            if len(code) > 1 and code[1] == "200":
                data = propstat.findtext("d:prop/c:calendar-data", namespaces=_NS)
        if not data:
            raise UnreadableCalendar(f"the calendar listed the event {name} but did not send it")
        try:
            found.append(icalendar.Calendar.from_ical(data))
        except Exception as exc:
            raise UnreadableCalendar(
                f"the event {name} could not be read ({type(exc).__name__})"
            ) from None
    return found
