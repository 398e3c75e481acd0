"""Calendar commands: link a resource to its owner's CalDAV calendar or a secret iCal address,
connect Google Calendar or Microsoft 365 (prints the consent URL), see the links' state, the
ICS feed."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from booking_service.adapters.registry import calendar_providers, oauth_clients
from booking_service.cli.common import echo, expected_errors
from booking_service.ports.calendars import CalendarAccess, CalendarFailure
from booking_service.runtime.extensions import runtime
from booking_service.use_cases.calendar_connect import link_ics, start_connect
from booking_service.use_cases.calendar_links import (
    CalendarInputError,
    calendar_status,
    feed_url,
    link_calendar,
    link_view,
    list_links,
    revoke_feed,
    unlink_calendar,
)

calendar_cli = AppGroup(
    "calendar",
    help="Owners' calendars: CalDAV, Google, Microsoft 365 and iCal-address links; the ICS feed.",
)

_STALENESS = click.option(
    "--max-staleness-minutes",
    type=int,
    default=15,
    show_default=True,
    help="After this long without a good read, the calendar counts as stale.",
)
_WHEN_STALE = click.option(
    "--when-stale",
    type=click.Choice(["refuse", "book"]),
    default="refuse",
    show_default=True,
    help="refuse: a booking on this resource is answered 'I can't confirm that time right "
    "now'; book: it is booked and marked unconfirmed.",
)


@calendar_cli.command("link")
@click.argument("resource_id", type=int)
@click.option(
    "--caldav-url",
    help="The calendar collection's URL, e.g. https://dav.example.com/owner/clinic/.",
)
@click.option(
    "--ics-url",
    help="A calendar's secret iCal address (Google's 'secret address in iCal format', "
    "Outlook's published calendar...): its events block, nothing is written to it. Stored "
    'sealed and shown masked; "-" reads it from standard input.',
)
@click.option("--username", help="CalDAV user name.")
@click.option(
    "--password",
    help='CalDAV password or app password (stored sealed with SECRET_KEY); "-" reads it from '
    "standard input, which keeps it out of the process list and the shell history.",
)
@click.option("--no-push", is_flag=True, help="Do not put bookings into this calendar.")
@click.option("--no-block", is_flag=True, help="Do not treat its events as busy time.")
@_STALENESS
@_WHEN_STALE
@expected_errors
def calendar_link(
    resource_id,
    caldav_url,
    ics_url,
    username,
    password,
    no_push,
    no_block,
    max_staleness_minutes,
    when_stale,
):
    """Link a resource to a CalDAV calendar (--caldav-url) or a secret iCal address
    (--ics-url); checks it can be read, then prints the link as JSON (never the password or
    the address). The worker pushes bookings (CalDAV) and reads busy times."""
    if (caldav_url is None) == (ics_url is None):
        raise click.UsageError("give --caldav-url or --ics-url")
    rt = runtime()
    settings = rt.settings
    if ics_url is not None:
        if username or password or no_push or no_block:
            raise CalendarInputError(
                "an iCal address only blocks: no --username, --password, --no-push or --no-block"
            )
        if ics_url == "-":
            ics_url = sys.stdin.readline().strip()
        made = link_ics(
            rt.uow(),
            resource_id,
            ics_url,
            max_staleness_minutes=max_staleness_minutes,
            when_stale=when_stale,
            allow_private=settings.calendar_allow_private_targets,
            check=calendar_providers(settings)["ics"],
            timeout_s=settings.calendar_timeout_s,
        )
        echo(link_view(made))
        return
    if password == "-":  # noqa: S105 - "-" means standard input, not a password
        password = sys.stdin.readline().rstrip("\n")

    def check(url: str, user: str | None, secret: str | None) -> None:
        access = CalendarAccess(
            url=url,
            username=user,
            password=secret,
            timeout_s=settings.calendar_timeout_s,
            allow_private=settings.calendar_allow_private_targets,
        )
        try:
            calendar_providers(settings)["caldav"].check(access)
        except CalendarFailure as exc:
            raise CalendarInputError(f"cannot read that calendar: {exc}") from None

    link = link_calendar(
        rt.uow(),
        resource_id,
        caldav_url,
        username=username,
        password=password,
        push=not no_push,
        block=not no_block,
        max_staleness_minutes=max_staleness_minutes,
        when_stale=when_stale,
        allow_private=settings.calendar_allow_private_targets,
        check=check,
    )
    echo(link_view(link))


@calendar_cli.command("connect")
@click.argument("resource_id", type=int)
@click.option(
    "--provider", type=click.Choice(["google", "microsoft"]), required=True, help="Whose calendar."
)
@click.option(
    "--calendar-id",
    help="Which calendar of the account (default: the primary one for Google, the default "
    "calendar for Microsoft).",
)
@click.option("--no-push", is_flag=True, help="Do not put bookings into this calendar.")
@click.option("--no-block", is_flag=True, help="Do not treat its events as busy time.")
@_STALENESS
@_WHEN_STALE
@expected_errors
def calendar_connect(
    resource_id, provider, calendar_id, no_push, no_block, max_staleness_minutes, when_stale
):
    """Print {"authorize_url": ...}: whoever opens it within 15 minutes and agrees links the
    resource to that Google or Microsoft 365 calendar (once; the link is then in `calendar
    list`)."""
    rt = runtime()
    url = start_connect(
        rt.uow(),
        oauth_clients(rt.settings),
        rt.settings.base_url,
        resource_id,
        provider,
        calendar_id=calendar_id,
        push=not no_push,
        block=not no_block,
        max_staleness_minutes=max_staleness_minutes,
        when_stale=when_stale,
    )
    echo({"authorize_url": url})


@calendar_cli.command("list")
@click.argument("org_id", type=int)
@expected_errors
def calendar_list(org_id):
    """Print the organization's calendar links as JSON lines."""
    for link in list_links(runtime().uow(), org_id):
        echo(link_view(link))


@calendar_cli.command("unlink")
@click.argument("link_id", type=int)
@expected_errors
def calendar_unlink(link_id):
    """Remove a link: its busy times stop counting, nothing more is pushed (events already in
    the calendar stay there)."""
    link = unlink_calendar(runtime().uow(), link_id)
    echo({"id": link.id, "unlinked": True})


@calendar_cli.command("status")
@click.argument("org_id", type=int)
@expected_errors
def calendar_status_command(org_id):
    """Per link, as JSON lines: last good sync, stale or not, last error, events waiting to be
    pushed."""
    for line in calendar_status(runtime().uow(), org_id):
        echo(line)


@calendar_cli.command("feed")
@click.argument("resource_id", type=int, required=False)
@click.option("--org", "org_id", type=int, help="One feed with every resource of the organization.")
@click.option("--rotate", is_flag=True, help="Replace the URL; the old one answers 404.")
@click.option(
    "--revoke", is_flag=True, help="Delete the feed: its URL answers 404 and no new one is made."
)
@click.option("--url", "base_url", help="This service's public URL (default: PUBLIC_URL).")
@expected_errors
def calendar_feed(resource_id, org_id, rotate, revoke, base_url):
    """Print the secret ICS URL to subscribe to in Google Calendar, Apple Calendar or Outlook
    (shown once: keep it like a password); --revoke deletes it (a leaked URL, a subscription no
    longer wanted)."""
    if (resource_id is None) == (org_id is None):
        raise click.UsageError("give a RESOURCE_ID or --org ORG_ID")
    if rotate and revoke:
        raise click.UsageError("--rotate and --revoke cannot be used together")
    rt = runtime()
    if revoke:
        revoke_feed(rt.uow(), resource_id=resource_id, org_id=org_id)
        echo({"revoked": True, "resource_id": resource_id, "org_id": org_id})
        return
    made = feed_url(
        rt.uow(),
        base_url or rt.settings.public_url,
        resource_id=resource_id,
        org_id=org_id,
        rotate=rotate,
    )
    echo({"url": made.url, "rotated": made.rotated})
