"""Calendar links (push bookings to an owner's CalDAV calendar, block the times it says are
busy), their status, the ICS feed, and the owner's listing of appointments."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from booking_service.adapters.webhooks import UnsafeTarget, check_target
from booking_service.domain import calendar_events
from booking_service.domain.errors import InputError, NotFound
from booking_service.domain.times import utc_now
from booking_service.persistence.models import WHEN_STALE
from booking_service.persistence.repositories.calendars import LinkRow, ListedAppointment
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases.resources import name_key

# The feed shows this much history (a subscribed calendar keeps last month's visits).
FEED_HISTORY = timedelta(days=30)


class CalendarInputError(InputError):
    """A calendar setting the operator gave is not usable; the message says why."""


def link_view(link: LinkRow) -> dict:
    """A link as the CLI prints it: never the password, the refresh token or an iCal address
    (its `url` is masked)."""
    return {
        "id": link.id,
        "org_id": link.org_id,
        "resource_id": link.resource_id,
        "provider": link.provider,
        "account": link.account,
        "calendar_id": link.calendar_id,
        "url": link.url,
        "username": link.username,
        "password_set": link.password is not None,
        "push": link.push,
        "block": link.block,
        "max_staleness_minutes": link.max_staleness_minutes,
        "when_stale": link.when_stale,
    }


def _checked_url(url: str, allow_private: bool, with_password: bool) -> str:
    url = url.strip()
    if len(url) > 2000:
        raise CalendarInputError("the URL is longer than 2000 characters")
    parts = urlsplit(url)
    if parts.username or parts.password:
        # The URL is printed and logged; credentials belong in --username/--password (sealed).
        raise CalendarInputError(
            "caldav_url",
            "must not carry credentials: give the user name and password separately, "
            "not in the URL",
        )
    if parts.query or parts.fragment:
        # Events are stored at <collection>/<UID>.ics: a query would end up in every path.
        raise CalendarInputError("give the calendar collection's URL without ?query or #fragment")
    if with_password and parts.scheme != "https" and not allow_private:
        raise CalendarInputError("a password is only sent over https://")
    try:
        check_target(url, allow_private=allow_private)
    except UnsafeTarget as exc:
        raise CalendarInputError(str(exc)) from None
    return url if url.endswith("/") else url + "/"


def link_calendar(
    uow: AbstractUnitOfWork,
    resource_id: int,
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    push: bool = True,
    block: bool = True,
    max_staleness_minutes: int = 15,
    when_stale: str = "refuse",
    allow_private: bool = False,
    check: Callable[[str, str | None, str | None], None] | None = None,
) -> LinkRow:
    """Link a resource to a CalDAV calendar collection; NotFound without such resource.

    `check(url, username, password)` proves the calendar is reachable before anything is
    stored (raising CalendarInputError). Appointments of the resource that have not ended are
    queued for pushing, so the calendar shows what is already booked.
    """
    if not (push or block):
        raise CalendarInputError("a link that neither pushes nor blocks does nothing")
    if when_stale not in WHEN_STALE:
        raise CalendarInputError("when_stale", "must be refuse or book", allowed=WHEN_STALE)
    if not 1 <= max_staleness_minutes <= 10080:
        raise CalendarInputError("max_staleness_minutes", "must be between 1 and 10080 (a week)")
    if password and not username:
        raise CalendarInputError("username", "is needed with a password")
    url = _checked_url(url, allow_private, bool(password))
    with uow:
        resource = uow.schedule.resource(resource_id)
        if resource is None:
            raise NotFound("resource", resource_id)
        if push and any(
            other.push and other.url == url for other in uow.calendars.links(resource.org_id)
        ):
            # Two resources pushing into one calendar would share each event's address: a
            # move between them could delete the event the other just wrote.
            raise CalendarInputError(
                "no_push",
                "is needed: another link already pushes into that calendar (or use a calendar "
                "per resource)",
            )
    if check is not None:
        check(url, username, password)
    with uow:
        if uow.schedule.resource(resource_id) is None:  # removed meanwhile
            raise NotFound("resource", resource_id)
        link = uow.calendars.add_link(
            org_id=resource.org_id,
            resource_id=resource.id,
            url=url,
            username=username or None,
            password=uow.secrets.seal(password) if password else None,
            push=push,
            block=block,
            max_staleness_minutes=max_staleness_minutes,
            when_stale=when_stale,
        )
        if push:
            uow.calendars.push_upcoming(link, utc_now())
        uow.commit()
    return link


def list_links(uow: AbstractUnitOfWork, org_id: int) -> list[LinkRow]:
    """The organization's calendar links, oldest first; NotFound without such organization."""
    with uow:
        if uow.organizations.get(org_id) is None:
            raise NotFound("organization", org_id)
        return uow.calendars.links(org_id)


def unlink_calendar(uow: AbstractUnitOfWork, link_id: int) -> LinkRow:
    """Remove a link: its busy times stop counting and nothing more is pushed (events already
    in the calendar stay: it is the owner's calendar)."""
    with uow:
        link = uow.calendars.link(link_id)
        if link is None:
            raise NotFound("calendar link", link_id)
        uow.calendars.delete_link(link_id)
        uow.commit()
    return link


def calendar_status(uow: AbstractUnitOfWork, org_id: int) -> list[dict]:
    """Per link: last good sync, whether it is stale, the last error, how many polls failed in
    a row and when the next is tried (a failing link backs off), events waiting to be
    pushed."""
    now = utc_now()
    with uow:
        if uow.organizations.get(org_id) is None:
            raise NotFound("organization", org_id)
        links = uow.calendars.links(org_id)
        waiting = uow.calendars.waiting(org_id)
    return [
        {
            **link_view(link),
            "state": _state(link, now),
            "last_good_sync_at": _iso(link.last_good_sync_at),
            "stale": link.stale_at(now),
            "last_error": link.last_error,
            "last_error_at": _iso(link.last_error_at),
            "failed_polls_in_a_row": link.consecutive_failures,
            "next_poll_at": _iso(link.next_poll_at),
            "waiting_pushes": waiting.get(link.id, 0),
        }
        for link in links
    ]


def _state(link: LinkRow, now: datetime) -> str:
    """reconnect_needed (the grant is gone: the owner must connect again), stale, or ok."""
    if link.reconnect_needed:
        return "reconnect_needed"
    return "stale" if link.stale_at(now) else "ok"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --- the ICS feed --------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class FeedUrl:
    """A feed's secret URL (shown once) and whether it replaced an older one."""

    url: str
    rotated: bool


def feed_url(
    uow: AbstractUnitOfWork,
    base_url: str,
    *,
    resource_id: int | None = None,
    org_id: int | None = None,
    rotate: bool = False,
) -> FeedUrl:
    """Create the feed of a resource (or of the whole organization) and return its URL; an
    existing feed is replaced only with `rotate` (its old URL then answers 404). The token is
    `<org id>.<256 random bits>`: the id scopes the lookup, the random part is the secret."""
    with uow:
        org_id = _feed_owner(uow, resource_id, org_id)
        if not rotate and uow.calendars.has_feed(org_id, resource_id):
            raise CalendarInputError(
                "rotate",
                "makes a new URL (the old one stops working): this feed exists and its URL was "
                "shown when it was made",
            )
        token = f"{org_id}.{secrets.token_urlsafe(32)}"
        rotated = uow.calendars.set_feed(org_id, resource_id, _token_hash(token))
        uow.commit()
    return FeedUrl(f"{base_url.rstrip('/')}/ical/{token}.ics", rotated)


def _feed_owner(uow: AbstractUnitOfWork, resource_id: int | None, org_id: int | None) -> int:
    """The organization a feed belongs to: the resource's, else the one named (NotFound when
    there is no such resource or organization)."""
    if resource_id is not None:
        resource = uow.schedule.resource(resource_id)
        if resource is None:
            raise NotFound("resource", resource_id)
        return resource.org_id
    if org_id is None or uow.organizations.get(org_id) is None:
        raise NotFound("organization", org_id)
    return org_id


def revoke_feed(
    uow: AbstractUnitOfWork, *, resource_id: int | None = None, org_id: int | None = None
) -> None:
    """Delete the feed of a resource (or of the whole organization): its URL answers 404 from
    now on, and no new one exists until `feed_url` makes one. NotFound without such resource,
    organization or feed (a second revoke says so rather than pretending)."""
    with uow:
        org_id = _feed_owner(uow, resource_id, org_id)
        if not uow.calendars.remove_feed(org_id, resource_id):
            raise NotFound("feed", resource_id if resource_id is not None else org_id)
        uow.commit()


def feed_document(uow: AbstractUnitOfWork, token: str) -> bytes:
    """The ICS document of the feed with this token; NotFound for an unknown (or rotated)
    token."""
    now = utc_now()
    org_part, _, secret = token.partition(".")
    if not (org_part.isdigit() and 0 < int(org_part) < 2**63 and secret):
        raise NotFound("feed")
    with uow:
        found = uow.calendars.feed(int(org_part), _token_hash(token))
        if found is None:
            raise NotFound("feed")
        org_id, resource_id = found
        org = uow.organizations.get(org_id)
        assert org is not None  # the feed's foreign key
        rows = uow.calendars.appointments(
            org_id,
            now - FEED_HISTORY,
            now + timedelta(days=org.horizon_days),
            resource_id=resource_id,
            include_cancelled=False,
        )
    zone = ZoneInfo(org.timezone)
    return calendar_events.feed_document((_entry(row) for row in rows), zone, now, org.name)


def _entry(row: ListedAppointment) -> calendar_events.CalendarEntry:
    return calendar_events.CalendarEntry(
        org_id=row.org_id,
        reference=row.reference,
        sequence=row.sequence,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        name=row.name,
        service=row.service,
        resource=row.resource,
        phone=row.phone,
        status=row.status,
        unconfirmed=row.unconfirmed,
    )


# --- the listing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListingLine:
    """One appointment as the owner reads it: local time, masked phone."""

    starts: datetime  # local, in the organization's zone
    ends: datetime
    resource: str
    name: str | None
    service: str | None
    reference: str
    status: str
    phone: str
    unconfirmed: bool
    confirmed_at: datetime | None = None  # the caller confirmed it by text (#29)

    def as_json(self) -> dict:
        return {
            "starts_at": self.starts.isoformat(),
            "ends_at": self.ends.isoformat(),
            "resource": self.resource,
            "name": self.name,
            "service": self.service,
            "reference": self.reference,
            "status": self.status,
            "phone": self.phone,
            "unconfirmed": self.unconfirmed,
            "confirmed_at": self.confirmed_at.isoformat() if self.confirmed_at else None,
        }


def list_appointments(
    uow: AbstractUnitOfWork,
    org_id: int,
    *,
    first_day: date | None = None,
    days: int = 1,
    resource: str | None = None,
) -> tuple[str, list[ListingLine]]:
    """The organization's appointments on `days` local days from `first_day` (today in its
    zone by default), cancelled ones included; returns the zone's name and the lines."""
    if not 1 <= days <= 366:
        raise CalendarInputError("days", "must be between 1 and 366")
    with uow:
        org = uow.organizations.get(org_id)
        if org is None:
            raise NotFound("organization", org_id)
        zone = ZoneInfo(org.timezone)
        first = first_day or utc_now().astimezone(zone).date()
        resource_id = None
        if resource is not None:
            key = name_key(resource)
            matches = [r for r in uow.schedule.resources(org_id) if r.name_key == key]
            if not matches:
                raise CalendarInputError(f"the organization has no resource named {resource!r}")
            resource_id = matches[0].id
        start = datetime.combine(first, datetime.min.time(), zone)
        end = datetime.combine(first + timedelta(days=days), datetime.min.time(), zone)
        rows = uow.calendars.appointments(org_id, start, end, resource_id=resource_id)
    return org.timezone, [
        ListingLine(
            starts=row.starts_at.astimezone(zone),
            ends=row.ends_at.astimezone(zone),
            resource=row.resource,
            name=row.name,
            service=row.service,
            reference=row.reference,
            status=row.status,
            phone=calendar_events.masked_phone(row.phone),
            unconfirmed=row.unconfirmed,
            confirmed_at=row.confirmed_at.astimezone(zone) if row.confirmed_at else None,
        )
        for row in rows
    ]
