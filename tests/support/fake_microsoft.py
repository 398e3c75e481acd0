"""The Microsoft identity platform (v2.0) and Microsoft Graph calendars on loopback (the OAuth
part in fake_oauth.py).

Semantics kept from Microsoft:
- a refresh token only with `offline_access`; every refresh answers a new refresh token
  (rotation); a revoked one is `invalid_grant` with an AADSTS code in the description;
- POST …/events with a `transactionId` already used by an event of the calendar answers that
  event (no second one); Graph chooses the ids; PATCH/DELETE /me/events/{id}, 404 when gone;
- calendarView lists the occurrences in [startDateTime, endDateTime): series expanded,
  cancelled occurrences left out, `@odata.nextLink` paging; all-day events are midnight to
  midnight; `Prefer: outlook.timezone="UTC"` gives UTC times (7 fractional digits);
- 429 with Retry-After when told to throttle.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

from tests.support.fake_oauth import FakeOAuthServer, Reply


def _graph_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000")


class FakeMicrosoft(FakeOAuthServer):
    auth_path = "/common/oauth2/v2.0/authorize"
    token_path = "/common/oauth2/v2.0/token"

    def __init__(self) -> None:
        super().__init__()
        self.events: dict[str, dict] = {}  # the default calendar's events by id
        self.page_size = 10

    @property
    def authority_url(self) -> str:
        return f"{self.base}/common/"

    @property
    def graph_url(self) -> str:
        return f"{self.base}/v1.0/"

    def grants_refresh_token(self, consent: dict) -> bool:
        return "offline_access" in consent.get("scope", "").split()

    def rotates_refresh_tokens(self) -> bool:
        return True

    def revoked_answer(self) -> Reply:
        return self.token_error(
            400,
            "invalid_grant",
            "AADSTS50173: The provided grant has expired due to it being revoked, a fresh auth "
            "token is needed.",
        )

    # --- what the owner does in Outlook -------------------------------------------------------

    def add_event(
        self,
        start: datetime,
        end: datetime,
        *,
        all_day: bool = False,
        rule: str | None = None,
        **extra,
    ) -> dict:
        event_id = "AAMk" + secrets.token_hex(8)
        event = {
            "id": event_id,
            "start": start,
            "end": end,
            "isAllDay": all_day,
            "showAs": "busy",
            "isCancelled": False,
            "responseStatus": {"response": "organizer"},
            "rule": rule,
            "cancelled_occurrences": set(),
            **extra,
        }
        with self.lock:
            self.events[event_id] = event
        return event

    def cancel_occurrence(self, event_id: str, start: datetime) -> None:
        with self.lock:
            self.events[event_id]["cancelled_occurrences"].add(start)

    def ours(self) -> list[dict]:
        return [e for e in self.events.values() if e.get("transactionId")]

    # --- Graph --------------------------------------------------------------------------------

    def _error(self, status: int, code: str) -> Reply:
        return Reply(status, {"error": {"code": code, "message": code}})

    def api(self, method: str, path: str, query: dict, body, headers) -> Reply:
        with self.lock:
            if path in ("/v1.0/me/calendar", "/v1.0/me/calendars/cal-1") and method == "GET":
                return Reply(200, {"id": "cal-default", "name": "Calendar"})
            events = ("/v1.0/me/calendar/events", "/v1.0/me/calendars/cal-1/events")
            if path in events and method == "POST":
                return self._create(body)
            if path.endswith("/calendarView") and method == "GET":
                return self._view(query, headers)
            match = re.fullmatch(r"/v1.0/me/events/([^/]+)", path)
            if match:
                event = self.events.get(match.group(1))
                if event is None:
                    return self._error(404, "ErrorItemNotFound")
                if method == "PATCH":
                    self._merge(event, body)
                    return Reply(200, self._public(event, event["start"], event["end"]))
                if method == "DELETE":
                    del self.events[event["id"]]
                    return Reply(204)
            return self._error(404, "ResourceNotFound")

    def _when(self, value: dict) -> datetime:
        return datetime.fromisoformat(value["dateTime"]).replace(tzinfo=ZoneInfo(value["timeZone"]))

    def _merge(self, event: dict, body: dict) -> None:
        for key, value in body.items():
            event[key] = self._when(value) if key in ("start", "end") else value

    def _create(self, body: dict) -> Reply:
        transaction = body.get("transactionId")
        if transaction:
            for event in self.events.values():
                if event.get("transactionId") == transaction:
                    return Reply(201, self._public(event, event["start"], event["end"]))
        event_id = "AAMk" + secrets.token_hex(8)
        event = {
            "id": event_id,
            "isAllDay": False,
            "isCancelled": False,
            "responseStatus": {"response": "organizer"},
            "rule": None,
            "cancelled_occurrences": set(),
        }
        self._merge(event, body)
        self.events[event_id] = event
        return Reply(201, self._public(event, event["start"], event["end"]))

    def _public(self, event: dict, start: datetime, end: datetime) -> dict:
        if event["isAllDay"]:
            times = {
                "start": {
                    "dateTime": f"{start.date().isoformat()}T00:00:00.0000000",
                    "timeZone": "UTC",
                },
                "end": {
                    "dateTime": f"{end.date().isoformat()}T00:00:00.0000000",
                    "timeZone": "UTC",
                },
            }
        else:
            times = {
                "start": {"dateTime": _graph_time(start), "timeZone": "UTC"},
                "end": {"dateTime": _graph_time(end), "timeZone": "UTC"},
            }
        public = {
            k: v
            for k, v in event.items()
            if k not in ("start", "end", "rule", "cancelled_occurrences")
        }
        public.setdefault("transactionId", None)
        return {**public, **times}

    def _occurrences(self, event: dict, start: datetime, end: datetime):
        length = event["end"] - event["start"]
        if event["rule"] is None:
            starts: list[datetime] = [event["start"]]
        else:
            starts = list(
                rrulestr(event["rule"], dtstart=event["start"]).between(
                    start - length, end, inc=True
                )
            )
        for at in starts:
            if at in event["cancelled_occurrences"]:
                continue
            if at < end and at + length > start:
                yield at, at + length

    def _view(self, query: dict, headers) -> Reply:
        if "startDateTime" not in query or "endDateTime" not in query:
            return self._error(400, "ErrorInvalidParameter")
        start = datetime.fromisoformat(query["startDateTime"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(query["endDateTime"].replace("Z", "+00:00"))
        found = []
        for event in self.events.values():
            for a, b in self._occurrences(event, start, end):
                found.append(self._public(event, a, b))
        found.sort(key=lambda e: e["start"]["dateTime"])
        skip = int(query.get("$skip", "0"))
        page = found[skip : skip + self.page_size]
        answer: dict = {"value": page}
        if skip + self.page_size < len(found):
            rest = {k: v for k, v in query.items() if k != "$skip"}
            rest["$skip"] = str(skip + self.page_size)
            from urllib.parse import urlencode

            answer["@odata.nextLink"] = (
                f"{self.graph_url}me/calendar/calendarView?{urlencode(rest)}"
            )
        return Reply(200, answer)


def day_span(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    return (
        datetime.combine(day, datetime.min.time(), zone),
        datetime.combine(day + timedelta(days=1), datetime.min.time(), zone),
    )


@contextmanager
def fake_microsoft() -> Iterator[FakeMicrosoft]:
    server = FakeMicrosoft()
    server.start()
    try:
        yield server
    finally:
        server.stop()
