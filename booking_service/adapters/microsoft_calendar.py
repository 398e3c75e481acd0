"""Microsoft 365 / Outlook.com calendars through Microsoft Graph (v1.0) as a CalendarProvider,
over httpx with our own OAuth (adapters/oauth.py).

Why not msgraph-sdk or msal: the SDK is large for five endpoints; msal brings requests and a
token cache we would have to persist ourselves; the refresh is one form POST.

- Push: create with `transactionId` (the appointment's UID): Graph answers a retried create
  with the event it already made, so a lost answer never makes a second one. The id Graph
  returns is kept (calendar_remote_events) and used to PATCH on a move and DELETE on a cancel
  (404 counts as done); an event the owner deleted by hand is created again.
- Busy: `calendarView` over the window (Graph expands recurrences; cancelled occurrences are
  not listed), read in full each poll, times asked in UTC. "Free" (showAs), cancelled and
  declined events and ours (transactionId) do not block; an all-day event blocks its days in
  the organization's zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

from booking_service.adapters.oauth import AccessTokens, ApiSession, OAuthClient
from booking_service.domain.calendar_events import merge
from booking_service.ports.calendars import (
    BusyQuery,
    BusyRead,
    CalendarAccess,
    CalendarFailure,
    NeedsReconnect,
    PushedEvent,
)

SCOPES = ("offline_access", "openid", "email", "Calendars.ReadWrite")
_SELECT = "id,start,end,isAllDay,showAs,isCancelled,responseStatus,transactionId"
# Pages of calendarView read at most: a window with more events than this is not read as free.
MAX_PAGES = 50


def microsoft_client(client_id: str, client_secret: str, authority_url: str) -> OAuthClient:
    """The Microsoft identity platform registration (v2.0 endpoints of the authority)."""
    authority = authority_url.rstrip("/") + "/"
    return OAuthClient(
        name="Microsoft",
        client_id=client_id,
        client_secret=client_secret,
        auth_url=authority + "oauth2/v2.0/authorize",
        token_url=authority + "oauth2/v2.0/token",
        scopes=SCOPES,
        extra=(("response_mode", "query"),),
    )


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


class MicrosoftCalendar:
    """The CalendarProvider port over Microsoft Graph."""

    chooses_ids = True

    def __init__(self, client: OAuthClient, graph_url: str):
        self._tokens = AccessTokens(client)
        self._graph = graph_url.rstrip("/") + "/"

    def _session(self, access: CalendarAccess) -> ApiSession:
        if not access.password:
            raise NeedsReconnect("no Microsoft grant is stored for this calendar")
        return ApiSession(
            self._tokens, access.password, access.renewed, access.timeout_s, (429, 503)
        )

    def _calendar(self, access: CalendarAccess) -> str:
        # No id: the account's default calendar.
        if access.calendar_id:
            return f"{self._graph}me/calendars/{quote(access.calendar_id, safe='')}"
        return f"{self._graph}me/calendar"

    def _failed(self, response, what: str) -> CalendarFailure:
        if response.status_code == 403:
            return NeedsReconnect(f"Microsoft refused {what} (403)")
        return CalendarFailure(f"Microsoft answered {response.status_code} while {what}")

    def check(self, access: CalendarAccess) -> None:
        with self._session(access) as api:
            response = api.call("GET", self._calendar(access), params={"$select": "id"})
            if response.status_code != 200:
                raise self._failed(response, "reading the calendar")

    def _body(self, event: PushedEvent) -> dict:
        # Graph takes a local time and a zone; IANA names are accepted.
        zone = ZoneInfo(event.timezone)
        return {
            "subject": event.summary,
            "body": {"contentType": "text", "content": event.description},
            "start": {
                "dateTime": event.starts_at.astimezone(zone).replace(tzinfo=None).isoformat(),
                "timeZone": event.timezone,
            },
            "end": {
                "dateTime": event.ends_at.astimezone(zone).replace(tzinfo=None).isoformat(),
                "timeZone": event.timezone,
            },
            "showAs": "tentative" if event.tentative else "busy",
            "isReminderOn": False,
        }

    def put(self, access: CalendarAccess, event: PushedEvent) -> str:
        body = self._body(event)
        with self._session(access) as api:
            if event.remote_id:
                patched = api.call(
                    "PATCH", f"{self._graph}me/events/{quote(event.remote_id, safe='')}", json=body
                )
                if patched.status_code == 200:
                    return event.remote_id
                if patched.status_code != 404:
                    raise self._failed(patched, "changing the appointment")
                # Deleted by hand in Outlook: it is made again below.
            created = api.call(
                "POST",
                f"{self._calendar(access)}/events",
                json={**body, "transactionId": event.uid},
            )
            if created.status_code not in (200, 201):
                raise self._failed(created, "adding the appointment")
            try:
                return str(created.json()["id"])
            except (ValueError, KeyError, TypeError):
                raise CalendarFailure("Microsoft's answer to a new event had no id") from None

    def remove(self, access: CalendarAccess, uid: str, remote_id: str | None) -> None:
        if remote_id is None:
            return  # never created here
        with self._session(access) as api:
            response = api.call("DELETE", f"{self._graph}me/events/{quote(remote_id, safe='')}")
            if response.status_code not in (200, 204, 404, 410):
                raise self._failed(response, "removing the appointment")

    def read_busy(self, access: CalendarAccess, query: BusyQuery) -> BusyRead:
        zone = ZoneInfo(query.timezone)
        url: str | None = f"{self._calendar(access)}/calendarView"
        params: dict | None = {
            "startDateTime": _utc(query.start) + "Z",
            "endDateTime": _utc(query.end) + "Z",
            "$select": _SELECT,
            "$top": "500",
        }
        ranges = []
        with self._session(access) as api:
            for _ in range(MAX_PAGES):
                assert url is not None
                response = api.call(
                    "GET", url, params=params, headers={"Prefer": 'outlook.timezone="UTC"'}
                )
                if response.status_code != 200:
                    raise self._failed(response, "reading the calendar")
                try:
                    body = response.json()
                    items = list(body.get("value", []))
                    for item in items:
                        if _blocks(item, query.own_suffix):
                            start, end = _span(item, zone)
                            begins, ends = max(start, query.start), min(end, query.end)
                            if ends > begins:
                                ranges.append((begins, ends))
                except (ValueError, KeyError, TypeError, AttributeError):
                    raise CalendarFailure(
                        "Microsoft sent an event whose time could not be read"
                    ) from None
                url, params = body.get("@odata.nextLink"), None  # the link carries the query
                if not url:
                    return BusyRead(merge(ranges))
        raise CalendarFailure(f"the calendar has more than {MAX_PAGES} pages of events")


def _blocks(item: dict, own_suffix: str) -> bool:
    if item.get("isCancelled") or item.get("showAs") == "free":
        return False
    if str(item.get("transactionId") or "").endswith(own_suffix):
        return False
    return (item.get("responseStatus") or {}).get("response") != "declined"


def _span(item: dict, zone: ZoneInfo) -> tuple[datetime, datetime]:
    def at(value: dict) -> datetime:
        # UTC, as asked (Prefer: outlook.timezone); anything else is not guessed.
        if value.get("timeZone", "UTC") != "UTC":
            raise ValueError("not in UTC")
        return datetime.fromisoformat(str(value["dateTime"])[:26]).replace(tzinfo=UTC)

    if item.get("isAllDay"):
        # All-day events are dates, whatever zone the answer is in: the days, in ours.
        first = date.fromisoformat(str(item["start"]["dateTime"])[:10])
        last = date.fromisoformat(str(item["end"]["dateTime"])[:10])
        midnight = datetime.min.time()
        return datetime.combine(first, midnight, zone), datetime.combine(last, midnight, zone)
    return at(item["start"]), at(item["end"])
