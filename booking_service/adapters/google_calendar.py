"""Google Calendar (API v3) as a CalendarProvider, over httpx with our own OAuth
(adapters/oauth.py).

Why not google-api-python-client: 111 MB, most of it discovery documents, and a second HTTP
stack (httplib2) for the four calls we make (docs/CALENDARS.md).

- Push: `events.insert` with an id we choose from the organization and the reference
  (base32hex, the alphabet Google allows: a-v, 0-9), so a retry after a lost answer gets 409
  ("already exists") and patches that event instead of making a second one; `events.patch`
  on a move (status "confirmed" too: an event deleted earlier is brought back); `events.delete`
  on a cancel, 404 and 410 counting as done.
- Busy: `events.list` with singleEvents (Google expands recurrences) and a sync token: the
  first read lists everything, later ones only what changed; 410 Gone means the token
  expired: read everything again. The blocking events seen are kept in the link's sync state
  (only those that end after the read's window starts). Transparent ("free"), cancelled and
  declined events and our own (extendedProperties) do not block; an all-day event blocks its
  days in the organization's zone.
"""

from __future__ import annotations

import base64
import json
from datetime import date, datetime
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
    Throttled,
)

SCOPES = (
    "openid",
    "email",
    # Create, change and delete events on calendars the owner owns, and list them (busy
    # times): the narrowest scope that does both.
    "https://www.googleapis.com/auth/calendar.events.owned",
)
OWN_KEY = "bookingServiceUid"
_QUOTA_REASONS = ("rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded")
PAGE_SIZE = 250
# Upcoming events kept in a link's sync state at most: a calendar with more is not read (and
# so stale, never free) rather than grow without bound.
MAX_KNOWN_EVENTS = 20_000


def event_id(uid: str) -> str:
    """Our id for an appointment's event: base32hex of its UID (which names the organization
    and the reference), lower-case without padding (Google: a-v and 0-9, 5 to 1024
    characters)."""
    return base64.b32hexencode(uid.encode()).decode().rstrip("=").lower()


def google_client(client_id: str, client_secret: str, auth_url: str, token_url: str) -> OAuthClient:
    """Google's OAuth registration, asking for offline access (a refresh token) every time
    (prompt=consent: Google gives one only on the first consent otherwise)."""
    return OAuthClient(
        name="Google",
        client_id=client_id,
        client_secret=client_secret,
        auth_url=auth_url,
        token_url=token_url,
        scopes=SCOPES,
        extra=(("access_type", "offline"), ("prompt", "consent")),
    )


def _reason(response) -> str:
    try:
        errors = response.json()["error"]["errors"]
        return str(errors[0].get("reason", ""))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ""


class GoogleCalendar:
    """The CalendarProvider port over Google Calendar API v3."""

    chooses_ids = False

    def __init__(self, client: OAuthClient, api_url: str):
        self._tokens = AccessTokens(client)
        self._api = api_url.rstrip("/") + "/"

    def _session(self, access: CalendarAccess) -> ApiSession:
        if not access.password:
            raise NeedsReconnect("no Google grant is stored for this calendar")
        return ApiSession(self._tokens, access.password, access.renewed, access.timeout_s)

    def _events_url(self, access: CalendarAccess, event: str | None = None) -> str:
        calendar = quote(access.calendar_id or "primary", safe="")
        url = f"{self._api}calendars/{calendar}/events"
        return f"{url}/{event}" if event else url

    def _failed(self, response, what: str) -> CalendarFailure:
        reason = _reason(response)
        if response.status_code == 403 and reason in _QUOTA_REASONS:
            return Throttled(f"Google's quota was reached while {what} ({reason})")
        if response.status_code == 403:
            return NeedsReconnect(f"Google refused {what} ({reason or 'forbidden'})")
        return CalendarFailure(f"Google answered {response.status_code} while {what}")

    def check(self, access: CalendarAccess) -> None:
        with self._session(access) as api:
            response = api.call(
                "GET", self._events_url(access), params={"maxResults": 1, "singleEvents": "true"}
            )
            if response.status_code != 200:
                raise self._failed(response, "reading the calendar")

    def _body(self, event: PushedEvent) -> dict:
        zone = ZoneInfo(event.timezone)
        return {
            "summary": event.summary,
            "description": event.description,
            "start": {
                "dateTime": event.starts_at.astimezone(zone).isoformat(),
                "timeZone": event.timezone,
            },
            "end": {
                "dateTime": event.ends_at.astimezone(zone).isoformat(),
                "timeZone": event.timezone,
            },
            "status": "tentative" if event.tentative else "confirmed",
            "transparency": "opaque",
            "extendedProperties": {"private": {OWN_KEY: event.uid}},
            "reminders": {"useDefault": False},
        }

    def put(self, access: CalendarAccess, event: PushedEvent) -> None:
        ours = event_id(event.uid)
        body = self._body(event)
        with self._session(access) as api:
            created = api.call(
                "POST",
                self._events_url(access),
                params={"sendUpdates": "none"},
                json={"id": ours, **body},
            )
            if created.status_code in (200, 201):
                return
            if created.status_code != 409:
                raise self._failed(created, "adding the appointment")
            # Ours already (a retry after a lost answer, a move, one deleted by hand):
            # make it show exactly this.
            patched = api.call(
                "PATCH", self._events_url(access, ours), params={"sendUpdates": "none"}, json=body
            )
            if patched.status_code != 200:
                raise self._failed(patched, "changing the appointment")

    def remove(self, access: CalendarAccess, uid: str, remote_id: str | None) -> None:
        with self._session(access) as api:
            response = api.call(
                "DELETE",
                self._events_url(access, event_id(uid)),
                params={"sendUpdates": "none"},
            )
            if response.status_code not in (200, 204, 404, 410):
                raise self._failed(response, "removing the appointment")

    def read_busy(self, access: CalendarAccess, query: BusyQuery) -> BusyRead:
        state = _load(access.state)
        with self._session(access) as api:
            if state is not None:
                found = self._list(api, access, state["sync_token"], query)
                if found is not None:
                    token, changes = found
                    known = state["events"]
                    _apply(known, changes, query)
                    return _answer(token, known, query)
            # First read, or the sync token expired (410): everything again.
            found = self._list(api, access, None, query)
            if found is None:
                raise CalendarFailure("Google refused a full read of the calendar (410)")
            token, changes = found
            known = {}
            _apply(known, changes, query)
            return _answer(token, known, query)

    def _list(
        self, api: ApiSession, access: CalendarAccess, sync_token: str | None, query: BusyQuery
    ) -> tuple[str, list[dict]] | None:
        """Every item of one listing (all pages) and the next sync token; None on 410."""
        items: list[dict] = []
        page: str | None = None
        while True:
            params: dict = {"singleEvents": "true", "maxResults": PAGE_SIZE}
            if sync_token:
                params["syncToken"] = sync_token
            if page:
                params["pageToken"] = page
            response = api.call("GET", self._events_url(access), params=params)
            if response.status_code == 410:
                return None
            if response.status_code != 200:
                raise self._failed(response, "reading the calendar")
            try:
                body = response.json()
                items.extend(body.get("items", []))
            except (ValueError, AttributeError, TypeError):
                raise CalendarFailure(
                    "Google answered nonsense while reading the calendar"
                ) from None
            page = body.get("nextPageToken")
            if page:
                continue
            token = body.get("nextSyncToken")
            if not token:
                raise CalendarFailure("Google's listing ended without a sync token")
            return str(token), items


def _load(state: str | None) -> dict | None:
    if not state:
        return None
    try:
        loaded = json.loads(state)
    except ValueError:
        return None
    if not isinstance(loaded, dict) or "sync_token" not in loaded:
        return None
    return loaded


def _when(value: dict, zone: ZoneInfo) -> datetime:
    """A start or end: a dateTime with its offset, or an all-day date (midnight in the
    organization's zone)."""
    if "dateTime" in value:
        at = datetime.fromisoformat(str(value["dateTime"]).replace("Z", "+00:00"))
        if at.tzinfo is None:
            at = at.replace(tzinfo=ZoneInfo(value.get("timeZone") or zone.key))
        return at
    day = date.fromisoformat(str(value["date"]))
    return datetime.combine(day, datetime.min.time(), zone)


def _blocks(item: dict, own_suffix: str) -> bool:
    if item.get("status") == "cancelled" or item.get("transparency") == "transparent":
        return False
    if item.get("eventType") in ("workingLocation", "birthday"):
        return False
    private = (item.get("extendedProperties") or {}).get("private") or {}
    if str(private.get(OWN_KEY, "")).endswith(own_suffix):
        return False
    return not any(
        a.get("self") and a.get("responseStatus") == "declined" for a in item.get("attendees") or []
    )


def _apply(known: dict, items: list[dict], query: BusyQuery) -> None:
    """Fold a listing into the blocking events known by id ([start, end] ISO strings)."""
    zone = ZoneInfo(query.timezone)
    for item in items:
        key = str(item.get("id", ""))
        if not _blocks(item, query.own_suffix) or "start" not in item or "end" not in item:
            known.pop(key, None)
            continue
        try:
            start, end = _when(item["start"], zone), _when(item["end"], zone)
        except (KeyError, ValueError, TypeError):
            # A time we cannot read could be busy: never guessed free.
            raise CalendarFailure("Google sent an event whose time could not be read") from None
        known[key] = [start.isoformat(), end.isoformat()]
    # Past events are forgotten: the state stays the size of the diary ahead.
    for key in [k for k, (_, end) in known.items() if datetime.fromisoformat(end) <= query.start]:
        del known[key]
    if len(known) > MAX_KNOWN_EVENTS:
        raise CalendarFailure(f"the calendar has more than {MAX_KNOWN_EVENTS} upcoming events")


def _answer(token: str, known: dict, query: BusyQuery) -> BusyRead:
    ranges = []
    for start_iso, end_iso in known.values():
        start, end = datetime.fromisoformat(start_iso), datetime.fromisoformat(end_iso)
        begins, ends = max(start, query.start), min(end, query.end)
        if ends > begins:
            ranges.append((begins, ends))
    state = json.dumps({"sync_token": token, "events": known}, separators=(",", ":"))
    return BusyRead(merge(ranges), state)
