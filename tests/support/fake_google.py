"""Google OAuth 2.0 and Calendar API v3 on loopback (the OAuth part in fake_oauth.py).

Semantics kept from Google:
- events.insert with a client-chosen `id`: only a-v and 0-9, 5 to 1024 characters (else 400);
  an id already used in the calendar, even by a deleted event, is 409 "duplicate";
- events.patch merges; events.delete marks the event cancelled (a second delete is 410,
  an unknown id 404);
- events.list with singleEvents: a recurring series is listed as its instances
  (`recurringEventId`, `originalStartTime`); without a syncToken, cancelled events are left
  out and the answer ends with `nextSyncToken`; with one, every change since (cancelled ones
  included); an expired token is 410 Gone; `maxResults` pages with `nextPageToken`;
- 429 (or 403 rateLimitExceeded) with Retry-After when told to throttle; 401 for a revoked
  grant's access tokens, `invalid_grant` for its refresh token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta

from dateutil.rrule import rrulestr

from tests.support.fake_oauth import FakeOAuthServer, Reply

_ID = re.compile(r"^[a-v0-9]{5,1024}$")


class FakeGoogle(FakeOAuthServer):
    auth_path = "/o/oauth2/v2/auth"
    token_path = "/token"

    def __init__(self) -> None:
        super().__init__()
        self.calendars: dict[str, dict[str, dict]] = {"primary": {}}
        self.version = 0  # bumped on every change; sync tokens carry it
        self.oldest_token = 0  # tokens older than this are 410
        self.full_lists = 0

    @property
    def api_url(self) -> str:
        return f"{self.base}/calendar/v3/"

    # --- what the owner does in Google Calendar -----------------------------------------------

    def _touch(self, event: dict) -> None:
        self.version += 1
        event["_v"] = self.version

    def add_event(self, calendar: str = "primary", **event) -> dict:
        """An event the owner made (times as Google gives them: dateTime or date)."""
        with self.lock:
            event.setdefault("id", f"own{self.version + 1:05d}")
            event.setdefault("status", "confirmed")
            self._touch(event)
            self.calendars[calendar][event["id"]] = event
            return event

    def add_series(
        self, rule: str, start: datetime, minutes: int, calendar: str = "primary", **extra
    ) -> list[dict]:
        """A recurring event as singleEvents lists it: one instance per occurrence."""
        series = f"series{self.version + 1:05d}"
        made = []
        for n, at in enumerate(rrulestr(rule, dtstart=start)):
            made.append(
                self.add_event(
                    calendar,
                    id=f"{series}_{at.strftime('%Y%m%dT%H%M%S')}",
                    recurringEventId=series,
                    originalStartTime={"dateTime": at.isoformat()},
                    start={"dateTime": at.isoformat()},
                    end={"dateTime": (at + timedelta(minutes=minutes)).isoformat()},
                    **extra,
                )
            )
            if n > 500:
                break
        return made

    def cancel(self, event_id: str, calendar: str = "primary") -> None:
        """The owner deletes one event (or one instance of a series)."""
        with self.lock:
            event = self.calendars[calendar][event_id]
            event["status"] = "cancelled"
            self._touch(event)

    def expire_sync_tokens(self) -> None:
        with self.lock:
            self.oldest_token = self.version + 1

    def live(self, calendar: str = "primary") -> dict[str, dict]:
        return {k: v for k, v in self.calendars[calendar].items() if v["status"] != "cancelled"}

    # --- the API ------------------------------------------------------------------------------

    def _error(self, status: int, reason: str, message: str) -> Reply:
        return Reply(
            status,
            {"error": {"code": status, "message": message, "errors": [{"reason": reason}]}},
        )

    def throttled(self, status: int, wait: str | None) -> Reply:
        reason = "rateLimitExceeded"
        headers = {"Retry-After": wait} if wait is not None else {}
        reply = self._error(status, reason, "Rate Limit Exceeded")
        reply.headers = headers
        return reply

    def api(self, method: str, path: str, query: dict, body, headers) -> Reply:
        match = re.fullmatch(r"/calendar/v3/calendars/([^/]+)/events(?:/([^/]+))?", path)
        if match is None:
            return self._error(404, "notFound", "Not Found")
        calendar_id, event_id = match.group(1), match.group(2)
        with self.lock:
            calendar = self.calendars.get(calendar_id)
            if calendar is None:
                return self._error(404, "notFound", "Not Found")
            if method == "POST" and event_id is None:
                return self._insert(calendar, body)
            if method == "GET" and event_id is None:
                return self._list(calendar, query)
            if event_id is None:
                return self._error(405, "methodNotAllowed", "Method not allowed")
            event = calendar.get(event_id)
            if method == "PATCH":
                if event is None:
                    return self._error(404, "notFound", "Not Found")
                event.update(body or {})
                self._touch(event)
                return Reply(200, self._public(event))
            if method == "DELETE":
                if event is None:
                    return self._error(404, "notFound", "Not Found")
                if event["status"] == "cancelled":
                    return self._error(410, "deleted", "Resource has been deleted")
                event["status"] = "cancelled"
                self._touch(event)
                return Reply(204)
            if method == "GET":
                return (
                    Reply(200, self._public(event))
                    if event
                    else self._error(404, "notFound", "Not Found")
                )
        return self._error(405, "methodNotAllowed", "Method not allowed")

    def _insert(self, calendar: dict, body: dict) -> Reply:
        event_id = body.get("id")
        if event_id is not None and not _ID.match(event_id):
            return self._error(400, "invalid", "Invalid resource id value.")
        if event_id in calendar:
            return self._error(409, "duplicate", "The requested identifier already exists.")
        event = {**body, "id": event_id or f"g{self.version + 1:08d}"}
        event.setdefault("status", "confirmed")
        self._touch(event)
        calendar[event["id"]] = event
        return Reply(200, self._public(event))

    def _public(self, event: dict) -> dict:
        return {k: v for k, v in event.items() if not k.startswith("_")}

    def _list(self, calendar: dict, query: dict) -> Reply:
        token = query.get("syncToken")
        since = None
        if token is not None:
            since = int(token.removeprefix("sync"))
            if since < self.oldest_token:
                return self._error(410, "fullSyncRequired", "Sync token is no longer valid")
        else:
            self.full_lists += 1 if "pageToken" not in query else 0
        if query.get("singleEvents") != "true":
            return self._error(400, "badRequest", "this fake lists single events only")
        events = sorted(calendar.values(), key=lambda e: e["_v"])
        if since is None:
            chosen = [e for e in events if e["status"] != "cancelled"]
        else:
            chosen = [e for e in events if e["_v"] > since]
        size = int(query.get("maxResults", 250))
        offset = int(query.get("pageToken", "0"))
        page = chosen[offset : offset + size]
        answer: dict = {"kind": "calendar#events", "items": [self._public(e) for e in page]}
        if offset + size < len(chosen):
            answer["nextPageToken"] = str(offset + size)
        else:
            answer["nextSyncToken"] = f"sync{self.version}"
        return Reply(200, answer)


def all_day(day: date) -> dict:
    return {
        "start": {"date": day.isoformat()},
        "end": {"date": (day + timedelta(days=1)).isoformat()},
    }


@contextmanager
def fake_google() -> Iterator[FakeGoogle]:
    server = FakeGoogle()
    server.start()
    try:
        yield server
    finally:
        server.stop()
