"""Downloading a secret iCal address, in the killable child of calendar_process.py (the
provider is ics_feed.py).

The address is a secret (whoever has it reads the owner's diary): it is stored sealed, reaches
the child as the access's password, and is shown masked (`masked`). Each read is a
conditional GET (If-None-Match / If-Modified-Since from the last good read): 304 means
"unchanged", and the busy times stored stay. Once every FULL_READ_EVERY the whole document is
fetched anyway, so the window's far end (which moves with the clock) is filled in. The
download goes to the address `check_target` checked (no private targets unless
CALENDAR_ALLOW_PRIVATE_TARGETS, no redirects), is cut off past MAX_FEED_BYTES, and is parsed
and expanded (recurrence.py, bounded) in the killable child of calendar_process.py.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import icalendar

from booking_service.adapters.caldav import CalDavCalendar, CalendarUnreachable
from booking_service.domain.recurrence import UnreadableCalendar

MAX_FEED_BYTES = 5 * 1024 * 1024
FULL_READ_EVERY = timedelta(hours=12)


def normalized(url: str) -> str:
    """webcal:// (what calendar apps hand out) is https://."""
    url = url.strip()
    if url.lower().startswith("webcal://"):
        return "https://" + url[len("webcal://") :]
    return url


def masked(url: str) -> str:
    """The address as it may be shown: scheme and host, the rest hidden."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}/…"


class _Download(CalDavCalendar):
    """One GET of the feed at the checked address, its query kept (feeds carry their secret
    in the path or the query)."""

    def _pinned(self, url: str) -> str:
        assert self._target is not None
        pinned = urlsplit(self._target.url)
        wanted = urlsplit(url)
        return pinned._replace(path=wanted.path, query=wanted.query).geturl()

    def __enter__(self) -> _Download:
        super().__enter__()
        return self

    def get(self, headers: dict) -> tuple[int, httpx.Headers, bytes]:
        assert self._client is not None and self._target is not None
        started = time.monotonic()
        sent = {"host": self._target.host_header, "user-agent": "booking_service-ics/1", **headers}
        extensions = (
            {"sni_hostname": self._target.sni_hostname} if self._target.sni_hostname else None
        )
        try:
            request = self._client.build_request(
                "GET", self._pinned(self.url.rstrip("/")), headers=sent, extensions=extensions
            )
            response = self._client.send(request, stream=True)
        except httpx.TimeoutException:
            raise CalendarUnreachable(
                f"the calendar address did not answer within {self._timeout_s} s"
            ) from None
        except httpx.HTTPError as exc:
            raise CalendarUnreachable(
                f"the calendar address could not be reached ({type(exc).__name__})"
            ) from None
        try:
            return response.status_code, response.headers, self._read(response, started)
        finally:
            response.close()


def read_in_child(payload: dict) -> tuple[list[tuple[datetime, datetime]] | None, str | None]:
    """The child's side (calendar_process.py): download, parse, expand."""
    from booking_service.domain.calendar_events import busy_ranges

    start, end = datetime.fromisoformat(payload["start"]), datetime.fromisoformat(payload["end"])
    previous = json.loads(payload["state"]) if payload.get("state") else {}
    headers = {}
    full_at = previous.get("full_at")
    recent = full_at and start - datetime.fromisoformat(full_at) < FULL_READ_EVERY
    if recent and previous.get("etag"):
        headers["if-none-match"] = previous["etag"]
    if recent and previous.get("last_modified"):
        headers["if-modified-since"] = previous["last_modified"]
    with _Download(
        normalized(payload["password"]),
        None,
        None,
        timeout_s=payload["timeout_s"],
        allow_private=payload["allow_private"],
        deadline_s=payload["deadline_s"],
        max_bytes=MAX_FEED_BYTES,
    ) as feed:
        status, answer_headers, body = feed.get(headers)
    if status == 304 and headers:
        return None, json.dumps(previous)
    if status in (401, 403, 404, 410):
        raise CalendarUnreachable(
            f"the calendar address answered {status}: it was probably reset; link the new one"
        )
    if status != 200:
        raise CalendarUnreachable(f"the calendar address answered {status}")
    try:
        calendars = icalendar.Calendar.from_ical(body, multiple=True)
    except ValueError:
        raise UnreadableCalendar("the calendar address did not send an iCalendar file") from None
    ranges = busy_ranges(
        calendars, ZoneInfo(payload["timezone"]), start, end, own_suffix=payload["own_suffix"]
    )
    state = {
        "etag": answer_headers.get("etag"),
        "last_modified": answer_headers.get("last-modified"),
        "full_at": start.isoformat(),
    }
    return ranges, json.dumps(state)
