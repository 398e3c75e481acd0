"""Flask CLI commands: `flask --app wsgi org|schema|resource|service|vapi|demo|webhook|worker`.

Every command prints JSON; an operator's mistake (no such id, an invalid setting) is one JSON
line on stderr and exit code 1 (cli/common.py). Webhook endpoints and the outbox worker are in
cli/webhooks.py.
"""

from __future__ import annotations

import json
import shlex
import sys
from datetime import timedelta

import click
from flask import Flask
from flask.cli import AppGroup

from booking_service.cli.api_keys import apikey_cli
from booking_service.cli.appointments import appointment_alias_cli, appointments_cli
from booking_service.cli.calendars import calendar_cli
from booking_service.cli.calls import calls_cli
from booking_service.cli.common import echo as _echo
from booking_service.cli.common import expected_errors as _expected_errors
from booking_service.cli.common import fail as _fail
from booking_service.cli.messaging import (
    notifications_cli,
    org_email,
    org_sms,
    secrets_cli,
)
from booking_service.cli.users import user_cli
from booking_service.cli.voice_platforms import (
    elevenlabs_cli,
    org_elevenlabs,
    org_retell,
    org_vapi,
    retell_cli,
)
from booking_service.cli.waitlist import waitlist_cli
from booking_service.cli.webhooks import webhook_cli, worker_command
from booking_service.config import ConfigError
from booking_service.domain.errors import DatabaseUnavailable
from booking_service.domain.times import utc_now
from booking_service.persistence.db import make_engine, make_session_factory
from booking_service.persistence.schema_check import check_schema
from booking_service.persistence.unit_of_work import SqlAlchemyUnitOfWork
from booking_service.runtime.extensions import runtime
from booking_service.use_cases.accounts import add_user
from booking_service.use_cases.adoption import adopt_contacts
from booking_service.use_cases.messaging import reminder_values
from booking_service.use_cases.messaging import show as show_messaging
from booking_service.use_cases.orgs import (
    OrgInfo,
    create_org,
    list_orgs,
    rotate_secret,
    set_hmac,
    update_rules,
)
from booking_service.use_cases.resources import (
    add_resource,
    add_service,
    list_resources,
    set_day,
)
from booking_service.use_cases.voice_platforms import update_platform_settings
from booking_service.voice.elevenlabs.definitions import SECRET_PLACEHOLDER, tool_configs
from booking_service.voice.elevenlabs.definitions import tools_url as elevenlabs_url
from booking_service.voice.retell.definitions import tool_definitions as retell_definitions
from booking_service.voice.retell.definitions import tool_url as retell_url
from booking_service.voice.vapi.definitions import tool_definitions

DEMO_OWNER = "owner@demo.example"

org_cli = AppGroup("org", help="Manage organizations, their rules and webhook secrets.")
schema_cli = AppGroup("schema", help="Check the live database schema.")
demo_cli = AppGroup("demo", help="Development helpers.")
resource_cli = AppGroup("resource", help="Bookable resources and their hours.")
service_cli = AppGroup("service", help="Named services and their durations.")
vapi_cli = AppGroup("vapi", help="What to paste into VAPI.")


def _org_json(org: OrgInfo) -> dict:
    return {
        "id": org.id,
        "name": org.name,
        "timezone": org.timezone,
        "phone_region": org.phone_region,
        "appointment_minutes": org.appointment_minutes,
        "slot_minutes": org.rules.slot_minutes,
        "min_notice_minutes": org.rules.min_notice_minutes,
        "horizon_days": org.rules.horizon_days,
        "buffer_minutes": org.rules.buffer_minutes,
        "max_upcoming_per_caller": org.max_upcoming_per_caller,
        "sms_per_day": org.sms_per_day,
        "email_per_day": org.email_per_day,
        "unverified_bookings_per_day": org.unverified_bookings_per_day,
    }


def _resource_json(resource) -> dict:
    return {
        "id": resource.id,
        "org_id": resource.org_id,
        "name": resource.name,
        "hours": resource.hours,
    }


@org_cli.command("create")
@click.option("--name", required=True, help="The business's name.")
@click.option("--timezone", "timezone_name", required=True, help="IANA zone, e.g. Europe/Paris.")
@click.option("--phone-region", default="US", show_default=True, help="ISO 3166 alpha-2.")
@click.option("--appointment-minutes", default=30, show_default=True, type=int)
@_expected_errors
def org_create(name: str, timezone_name: str, phone_region: str, appointment_minutes: int):
    """Create an organization; prints its id and webhook secret (shown only this once)."""
    created = create_org(
        runtime().uow(),
        name=name,
        timezone=timezone_name,
        phone_region=phone_region,
        appointment_minutes=appointment_minutes,
    )
    _echo({**_org_json(created.org), "secret": created.secret})


@org_cli.command("rotate-secret")
@click.argument("org_id", type=int)
@click.option(
    "--grace-minutes",
    default=0,
    show_default=True,
    type=int,
    help="Keep the old secret working this long, while VAPI's credential is updated.",
)
@_expected_errors
def org_rotate_secret(org_id: int, grace_minutes: int):
    """Replace an organization's webhook secret; prints the new one.

    The old secret stops working at once, or after --grace-minutes.
    """
    secret = rotate_secret(runtime().uow(), org_id, grace_minutes)
    _echo({"id": org_id, "secret": secret})


@org_cli.command("hmac")
@click.argument("org_id", type=int)
@click.option("--disable", is_flag=True, help="Stop requiring signed requests.")
@_expected_errors
def org_hmac(org_id: int, disable: bool):
    """Require VAPI HMAC-signed requests; prints the key and the URL path to use.

    Signed requests go to /api/vapi/tools/ORG_ID (VAPI's HMAC credential sends no bearer
    secret); bearer requests to /api/vapi/tools must then be signed too.
    """
    key = set_hmac(runtime().uow(), org_id, enable=not disable)
    if disable:
        _echo({"id": org_id, "hmac": "disabled"})
    else:
        _echo({"id": org_id, "hmac_secret": key, "path": f"/api/vapi/tools/{org_id}"})


@org_cli.command("update")
@click.argument("org_id", type=int)
@click.option("--slot-minutes", type=int, help="Start times fall on this grid (default 15).")
@click.option("--min-notice-minutes", type=int, help="No bookings sooner than this (default 60).")
@click.option("--horizon-days", type=int, help="No bookings further ahead (default 60).")
@click.option("--buffer-minutes", type=int, help="Gap kept free after each booking (default 0).")
@click.option(
    "--max-upcoming-per-caller",
    type=int,
    help="Upcoming appointments one phone number (or email) may hold (default 4).",
)
@click.option(
    "--sms-per-day", type=int, help="SMS the business sends a day, at most (default 200)."
)
@click.option("--email-per-day", type=int, help="Emails the business sends a day (default 500).")
@click.option(
    "--unverified-bookings-per-day",
    type=int,
    help="Bookings a day for a phone number that is not the verified caller's own (default 20).",
)
@click.option(
    "--reminders",
    help='Reminder offsets before each appointment, e.g. "24h,2h" (default); "" for none.',
)
@click.option(
    "--quiet-hours", help='No SMS between these local times, e.g. "21:00-08:00"; "" for none.'
)
@click.option(
    "--keep-recordings/--no-keep-recordings",
    default=None,
    help="Keep the recording URL of each call report (default: not kept).",
)
@_expected_errors
def org_update(
    org_id: int,
    slot_minutes,
    min_notice_minutes,
    horizon_days,
    buffer_minutes,
    max_upcoming_per_caller,
    sms_per_day,
    email_per_day,
    unverified_bookings_per_day,
    reminders,
    quiet_hours,
    keep_recordings,
):
    """Change an organization's booking rules, per-caller cap, daily budgets, reminders and
    quiet hours; prints the organization (with --reminders/--quiet-hours: its messaging
    settings)."""
    org = update_rules(
        runtime().uow(),
        org_id,
        messaging=reminder_values(reminders, quiet_hours),
        slot_minutes=slot_minutes,
        min_notice_minutes=min_notice_minutes,
        horizon_days=horizon_days,
        buffer_minutes=buffer_minutes,
        max_upcoming_per_caller=max_upcoming_per_caller,
        sms_per_day=sms_per_day,
        email_per_day=email_per_day,
        unverified_bookings_per_day=unverified_bookings_per_day,
    )
    shown = _org_json(org)
    if keep_recordings is not None:
        update_platform_settings(runtime().uow(), org_id, keep_recordings=keep_recordings)
        shown["keep_recordings"] = keep_recordings
    if reminders is not None or quiet_hours is not None:
        _echo({**shown, "messaging": show_messaging(runtime().uow(), org_id)})
    else:
        _echo(shown)


@resource_cli.command("add")
@click.argument("org_id", type=int)
@click.option("--name", required=True, help="e.g. 'Dr. Patel' or 'Chair 2'.")
@click.option(
    "--hours",
    "hours",
    multiple=True,
    required=True,
    help='Weekly hours, local time, e.g. "mon-fri 09:00-12:00,13:00-17:00" (repeatable).',
)
@_expected_errors
def resource_add(org_id: int, name: str, hours: tuple[str, ...]):
    """Add a bookable resource with weekly working hours; prints it."""
    _echo(_resource_json(add_resource(runtime().uow(), org_id, name, list(hours))))


@resource_cli.command("list")
@click.argument("org_id", type=int)
@_expected_errors
def resource_list(org_id: int):
    """List an organization's resources with their weekly hours."""
    _echo([_resource_json(r) for r in list_resources(runtime().uow(), org_id)])


@resource_cli.command("closed")
@click.argument("resource_id", type=int)
@click.option("--date", "day", required=True, type=click.DateTime(["%Y-%m-%d"]))
@click.option(
    "--hours", default=None, help='Open these hours instead of closing, e.g. "10:00-14:00".'
)
@_expected_errors
def resource_closed(resource_id: int, day, hours: str | None):
    """Close a resource on a date (or, with --hours, change its hours that day)."""
    _echo(set_day(runtime().uow(), resource_id, day.date(), hours))


@service_cli.command("add")
@click.argument("org_id", type=int)
@click.option("--name", required=True, help="e.g. cleaning")
@click.option("--minutes", required=True, type=int, help="How long it takes.")
@_expected_errors
def service_add(org_id: int, name: str, minutes: int):
    """Add a service (or change its duration); callers' service names must then match one."""
    _echo(add_service(runtime().uow(), org_id, name, minutes))


@vapi_cli.command("tools")
@click.option("--url", required=True, help="Public URL of POST /api/vapi/tools.")
def vapi_tools(url: str):
    """Print the VAPI function-tool definitions for every tool, ready to paste."""
    click.echo(json.dumps(tool_definitions(url), indent=2, ensure_ascii=False))


@org_cli.command("list")
def org_list():
    """List organizations (never their secrets)."""
    _echo([_org_json(org) for org in list_orgs(runtime().uow())])


@schema_cli.command("check")
def schema_check():
    """Exit 0 when the database is at head with every named constraint, else 1 naming the gaps."""
    rt = runtime()
    try:
        with rt.engine.connect() as conn:
            problems = check_schema(conn, rt.head_revision)
    except Exception as exc:  # any connection failure is reported, not raised
        _fail(f"cannot check the schema: database unreachable ({type(exc).__name__})")
    if problems:
        click.echo(json.dumps({"status": "failed", "problems": problems}), err=True)
        sys.exit(1)
    _echo({"status": "ok", "head": rt.head_revision})


def _demo_body(tool: str, call_id: str, arguments: dict) -> dict:
    return {
        "message": {
            "type": "tool-calls",
            "call": {"id": "demo-call", "customer": {"number": "+14155550123"}},
            "toolCallList": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": tool, "arguments": arguments},
                }
            ],
        }
    }


def _curl(url: str, secret: str, body: dict) -> str:
    return (
        f"curl -s {url}/api/vapi/tools -H 'Content-Type: application/json' "
        f"-H {shlex.quote('Authorization: Bearer ' + secret)} -d {shlex.quote(json.dumps(body))}"
    )


@schema_cli.command("adopt")
def schema_adopt():
    """Take over an existing contacts table: normalise phones, merge duplicates, add constraints.

    Runs in one transaction that keeps writers out until the constraint exists; prints a JSON
    report of every merge. Run `schema check` before and after.
    """
    rt = runtime()
    # One long transaction holding table locks: straight to PostgreSQL, past any pooler.
    try:
        url = rt.settings.session_url()
    except ConfigError as exc:
        _fail(str(exc))
    engine = rt.engine if url == rt.settings.database_url else make_engine(rt.settings, url)
    try:
        report = adopt_contacts(SqlAlchemyUnitOfWork(make_session_factory(engine)))
    except DatabaseUnavailable:
        _fail("the database is not reachable")
    except Exception as exc:  # rolled back as a whole; the operator needs a sentence
        _fail(f"adoption failed and changed nothing ({type(exc).__name__})")
    finally:
        if engine is not rt.engine:
            engine.dispose()
    _echo(report.as_json())


# The demo business's services: the printed curl asks for "cleaning", which must be one of
# them (a service outside the catalogue lands in notes).
DEMO_SERVICES = (("cleaning", 45), ("check-up", 30), ("whitening", 60))


def _platform_setup(url: str, org_id: int) -> list[tuple[str, str, object]]:
    """(title, how to use it, the JSON to paste) for each voice platform."""
    base = url.rstrip("/")
    return [
        (
            "VAPI tools",
            f"Server URL {base}/api/vapi/tools; credential: Bearer <the secret above>. "
            "Paste each into Tools > Create (or POST /tool).",
            tool_definitions(f"{base}/api/vapi/tools"),
        ),
        (
            "Retell custom functions",
            f"First: flask --app wsgi org retell {org_id} --api-key - (your Retell API key "
            f"with the webhook badge, on standard input). Post-call webhook: "
            f"{base}/api/retell/{org_id}/events.",
            retell_definitions(retell_url(base, org_id)),
        ),
        (
            "ElevenLabs webhook tools",
            "Store 'Bearer <the secret above>' as a workspace secret and put its id in place of "
            f"{SECRET_PLACEHOLDER}. Post-call webhook: {base}/api/elevenlabs/{org_id}/events "
            f"(flask --app wsgi org elevenlabs {org_id} --webhook-secret -).",
            tool_configs(elevenlabs_url(base)),
        ),
    ]


@demo_cli.command("setup")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True)
def demo_setup(url: str):
    """Create a demo organization (with services) and its owner on first run; print curls
    that check availability and book, each voice platform's set-up, and how to sign in."""
    uow = runtime().uow
    existing = [org for org in list_orgs(uow()) if org.name == "Demo Dental"]
    if existing:
        org = existing[0]
        click.echo(
            f"Demo organization exists (id {org.id}). Its secret was shown when it was created; "
            f"get a new one with: flask --app wsgi org rotate-secret {org.id}",
            err=True,
        )
        return
    created = create_org(uow(), name="Demo Dental", timezone="America/New_York")
    for name, minutes in DEMO_SERVICES:
        add_service(uow(), created.org.id, name, minutes)
    # The next weekday (default hours are Mon-Fri 09:00-17:00), at 10:00 local time.
    day = utc_now().astimezone(created.org.zone).date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    check = _demo_body("checkAvailability", "demo-check-1", {"date": day.isoformat()})
    book = _demo_body(
        "bookAppointment",
        "demo-book-1",
        {"name": "Maria Lopez", "start": f"{day.isoformat()}T10:00", "service": "cleaning"},
    )
    click.echo(
        f"Created demo organization {created.org.id} with services "
        f"{', '.join(name for name, _ in DEMO_SERVICES)}. Webhook secret (shown once):",
        err=True,
    )
    click.echo(f"  {created.secret}", err=True)
    click.echo("Check availability:", err=True)
    click.echo(f"  {_curl(url, created.secret, check)}", err=True)
    click.echo("Book an appointment:", err=True)
    click.echo(f"  {_curl(url, created.secret, book)}", err=True)
    for title, how, pasted in _platform_setup(url, created.org.id):
        click.echo(f"--- {title} ---", err=True)
        click.echo(how, err=True)
        click.echo(json.dumps(pasted, indent=2, ensure_ascii=False), err=True)
        click.echo(f"--- end of {title} ---", err=True)
    owner = add_user(uow(), created.org.id, DEMO_OWNER, "owner")
    click.echo(
        f"The diary's web page: {url}/app/ (sign in as {DEMO_OWNER} with the password "
        f"{owner.password}, shown once; `flask --app wsgi user reset-password "
        f"{owner.account.id}` makes a new one)",
        err=True,
    )


def register_cli(app: Flask) -> None:
    """Attach the command groups to the app."""
    app.cli.add_command(webhook_cli)
    app.cli.add_command(apikey_cli)
    app.cli.add_command(worker_command)
    app.cli.add_command(org_cli)
    app.cli.add_command(schema_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(resource_cli)
    app.cli.add_command(service_cli)
    app.cli.add_command(vapi_cli)
    app.cli.add_command(notifications_cli)
    app.cli.add_command(appointment_alias_cli)
    app.cli.add_command(secrets_cli)
    app.cli.add_command(user_cli)
    app.cli.add_command(calendar_cli)
    app.cli.add_command(appointments_cli)
    app.cli.add_command(waitlist_cli)
    org_cli.add_command(org_sms)
    org_cli.add_command(org_retell)
    org_cli.add_command(org_elevenlabs)
    org_cli.add_command(org_vapi)
    app.cli.add_command(retell_cli)
    app.cli.add_command(calls_cli)
    app.cli.add_command(elevenlabs_cli)
    org_cli.add_command(org_email)
