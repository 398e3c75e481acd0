"""Notifications against real clients and fakes on loopback: the `twilio` client against
tests/support/twilio_server.py, smtplib against aiosmtpd.

The fixtures (`mailbox`, `twilio`, `env`, `app`, `org`) are the notification tests' world: an
app that texts through the fake Twilio and mails through the local SMTP server, and an
organization with SMS and email on. tests/integration/notifications/conftest.py hands them to
the tests in that folder; the helpers are for any test that texts or mails.
"""

from __future__ import annotations

import email
from collections.abc import Iterator
from datetime import datetime

import pytest
from aiosmtpd.controller import Controller

from booking_service.devtools.pgcluster import free_port
from booking_service.domain.times import utc_now
from booking_service.runtime.extensions import KEY
from booking_service.use_cases.orgs import create_org
from tests.support.app import Org, make_app
from tests.support.helpers import booked, booking, cli, envelope, post, tool_call
from tests.support.twilio_server import FakeTwilio, fake_twilio

ACCOUNT = "AC" + "1" * 32
TOKEN = "twilio-auth-token-" + "z" * 14
SECRET_KEY = "k" * 40
CALLER = "+14155550123"


class Mailbox:
    """aiosmtpd handler: keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope_) -> str:
        self.messages.append(email.message_from_bytes(envelope_.content))
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with fake_twilio(ACCOUNT, TOKEN) as server:
        yield server


@pytest.fixture
def env(database_url, twilio, mailbox) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET_KEY,
        "TWILIO_API_BASE_URL": twilio.base_url,
        "SMTP_URL": f"smtp://127.0.0.1:{mailbox[1]}",
    }


@pytest.fixture
def app(env):
    application = make_app(
        env["DATABASE_URL"], **{k: v for k, v in env.items() if k != "DATABASE_URL"}
    )
    yield application
    application.extensions[KEY].engine.dispose()


@pytest.fixture
def org(app, rt) -> Org:
    """An organization that texts through the fake Twilio and mails from its own address."""
    created = create_org(rt.uow(), name="Bright Smile Dental", timezone="America/New_York")
    org = Org(created.org, created.secret)
    enable_sms(app, str(org.id))
    cli(app, "org", "email", str(org.id), "--from", "Bright Smile <hello@example.com>")
    cli(app, "org", "update", str(org.id), "--max-upcoming-per-caller", "20")
    return org


def enable_sms(app, org_id: str, *extra: str, account: str = ACCOUNT) -> str:
    """`org sms` with the fake Twilio account; returns what it printed."""
    return cli(
        app,
        "org",
        "sms",
        org_id,
        "--account-sid",
        account,
        "--auth-token",
        TOKEN,
        "--from",
        "+14155550100",
        *extra,
    )


class StoppedClock:
    """The notifier's clock, stopped at a time the test sets (`clock.now = ...`)."""

    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now


def book(app, org, start: str, **extra) -> dict:
    body = envelope(
        tool_call(**booking(start=start, email="maria@example.com", **extra)), customer=CALLER
    )
    return booked(post(app.test_client(), org, body))


def rows(db, reference: str | None = None) -> list[tuple]:
    return db.execute(
        "SELECT n.kind, n.channel, n.status, n.due_at, n.offset_minutes FROM notifications n "
        "JOIN appointments a ON a.id = n.appointment_id "
        "WHERE %s::text IS NULL OR a.reference = %s ORDER BY n.due_at, n.channel, n.kind",
        (reference, reference),
    ).fetchall()
