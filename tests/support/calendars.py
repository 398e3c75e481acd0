"""Calendar sync against Radicale on loopback (tests/support/radicale_server.py).

The fixtures (`dav`, `app`, `org`, `main_id`, `clock`, `sync`) are the calendar tests' world:
one Radicale per module, an app allowed to reach it, an organization whose diary reaches past
the spring DST change, its Main resource, the worker's clock and its CalendarSync.
tests/integration/calendars/conftest.py hands them to the tests in that folder.
"""

from __future__ import annotations

import json

import pytest

from booking_service.runtime.extensions import KEY
from booking_service.use_cases.orgs import create_org
from booking_service.use_cases.sync_calendars import CalendarSync
from tests.support.app import Org, make_app
from tests.support.helpers import Clock, booked, booking, cli, envelope, post, tool_call
from tests.support.radicale_server import PASSWORD, USER, Radicale, radicale

CALLER = "+14155550123"


@pytest.fixture(scope="module")
def dav(tmp_path_factory) -> Radicale:
    with radicale(tmp_path_factory.mktemp("radicale")) as server:
        yield server


@pytest.fixture
def app(database_url, dav):
    application = make_app(
        database_url,
        CALENDAR_ALLOW_PRIVATE_TARGETS=True,  # Radicale listens on loopback
        PUBLIC_URL="https://book.example.com",
        CALENDAR_TIMEOUT_S=3,
    )
    yield application
    application.extensions[KEY].engine.dispose()


@pytest.fixture
def org(app, rt) -> Org:
    created = create_org(rt.uow(), name="Bright Smile Dental", timezone="America/New_York")
    # Far enough ahead for the spring DST change; several bookings per caller.
    cli(app, "org", "update", str(created.org.id), "--horizon-days", "200")
    cli(app, "org", "update", str(created.org.id), "--max-upcoming-per-caller", "20")
    return Org(created.org, created.secret)


@pytest.fixture
def main_id(db, org) -> int:
    return db.execute(
        "SELECT id FROM resources WHERE org_id = %s AND name = 'Main'", (org.id,)
    ).fetchone()[0]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sync(rt, clock) -> CalendarSync:
    return CalendarSync(rt.uow, rt.settings, clock=clock, jitter=lambda: 1.0)


_names = iter(range(10**6))


def new_calendar(dav: Radicale):
    return dav.make_calendar(f"cal{next(_names)}")


def link(app, resource_id: int, calendar, *extra: str) -> dict:
    out = cli(
        app,
        "calendar",
        "link",
        str(resource_id),
        "--caldav-url",
        str(calendar.url),
        "--username",
        USER,
        "--password",
        "-",
        *extra,
        input=PASSWORD + "\n",
    )
    return json.loads(out)


def add_event(calendar, uid: str, *lines: str) -> None:
    body = "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//owner's phone//EN",
            "BEGIN:VEVENT",
            f"UID:{uid}",
            "DTSTAMP:20261130T120000Z",
            *lines,
            "END:VEVENT",
            "END:VCALENDAR",
        ]
    )
    calendar.add_event(body)


def book(app, org, start: str, **extra) -> str:
    body = envelope(tool_call(**booking(start=start, **extra)), customer=CALLER)
    return booked(post(app.test_client(), org, body))["appointment"]["reference"]


def pending(db, link_id: int) -> int:
    return db.execute(
        "SELECT count(*) FROM calendar_pushes WHERE link_id = %s AND status = 'pending'",
        (link_id,),
    ).fetchone()[0]
