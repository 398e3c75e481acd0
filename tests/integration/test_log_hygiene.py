"""What reaches the logs when an SMS or a webhook goes out: only our own lines at INFO, never
a caller's number nor the credentials of a URL, however chatty the client libraries are."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from booking_service.runtime.extensions import KEY
from booking_service.runtime.logging_setup import QUIET_LIBRARIES
from booking_service.use_cases.orgs import create_org
from booking_service.use_cases.send_messages import Notifier
from booking_service.worker.loop import Worker
from tests.support.app import Org, make_app
from tests.support.helpers import booked, booking, envelope, local_start, post, tool_call
from tests.support.notifications import ACCOUNT, CALLER, TOKEN, StoppedClock, enable_sms
from tests.support.receiver import receiver
from tests.support.twilio_server import FakeTwilio, fake_twilio

SECRET_KEY = "k" * 40


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with fake_twilio(ACCOUNT, TOKEN) as server:
        yield server


@pytest.fixture
def app(database_url, twilio):
    application = make_app(
        database_url,
        SECRET_KEY=SECRET_KEY,
        TWILIO_API_BASE_URL=twilio.base_url,
        WEBHOOK_ALLOW_PRIVATE_TARGETS=True,
        WEBHOOK_TIMEOUT_S=1,
    )
    yield application
    application.extensions[KEY].engine.dispose()


@pytest.fixture
def sms_org(app, rt) -> Org:
    created = create_org(rt.uow(), name="Bright Smile Dental", timezone="America/New_York")
    enable_sms(app, str(created.org.id))
    return Org(created.org, created.secret)


def _third_party(record: logging.LogRecord) -> bool:
    return not record.name.startswith(("booking_service", "tests"))


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def test_an_sms_leaves_no_third_party_info_line_and_no_number(app, rt, sms_org, twilio, caplog):
    booked(
        post(
            app.test_client(),
            sms_org,
            envelope(tool_call(**booking(start=local_start(days=3, hour=9))), customer=CALLER),
        )
    )
    caplog.set_level(logging.INFO)

    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()

    assert twilio.sent_to(CALLER)  # it did go out, through the twilio client
    chatty = [r for r in caplog.records if _third_party(r) and r.levelno < logging.WARNING]
    assert chatty == [], [f"{r.name}: {r.getMessage()}" for r in chatty]
    for record in caplog.records:
        assert _digits(CALLER)[1:] not in _digits(record.getMessage()), record.getMessage()


def test_a_webhook_leaves_no_third_party_info_line_and_no_url_credentials(app, rt, org, db, caplog):
    with receiver() as hooks:
        # An endpoint stored before URLs with credentials were refused (#24).
        url = hooks.url.replace("http://", "http://hookuser:s3cr3t-pass@")
        db.execute(
            "INSERT INTO webhook_endpoints (org_id, url, secret) VALUES (%s, %s, %s)",
            (org.id, url, "whsec_" + "A" * 43 + "="),
        )
        booked(post(app.test_client(), org, envelope(tool_call(**booking()))))
        caplog.set_level(logging.INFO)

        Worker(rt.uow, rt.settings, jitter=lambda: 1.0).deliver_due(calendars=False)

        assert len(hooks.received) == 1
    chatty = [r for r in caplog.records if _third_party(r) and r.levelno < logging.WARNING]
    assert chatty == [], [f"{r.name}: {r.getMessage()}" for r in chatty]
    assert not any("s3cr3t-pass" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("name", ["httpx", "httpcore", "twilio.http_client", "urllib3", "caldav"])
def test_client_libraries_log_warnings_only_while_ours_keep_info(app, name):
    assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING
    assert name.split(".")[0] in QUIET_LIBRARIES
    assert logging.getLogger("booking_service.worker.loop").isEnabledFor(logging.INFO)
