"""A caller's manage link in a real headless Chromium (#28): the link from the SMS the fake
Twilio received opens the page (phone width), the caller moves the appointment, and the
worker's next rounds push the new time to the linked calendar (Radicale) and text the caller
the move, with the same link."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait
from werkzeug.serving import make_server

from booking_service.devtools.pgcluster import free_port
from booking_service.domain.times import utc_now
from booking_service.runtime.extensions import KEY
from booking_service.use_cases.orgs import create_org
from booking_service.use_cases.send_messages import Notifier
from booking_service.use_cases.sync_calendars import CalendarSync
from tests.support.app import FORBIDDEN_IN_RESPONSES, Org, make_app
from tests.support.calendars import link, new_calendar
from tests.support.chromium import PHONE, set_width, start_chromium
from tests.support.helpers import Clock, local_start
from tests.support.notifications import CALLER as PHONE_NUMBER
from tests.support.notifications import SECRET_KEY, StoppedClock, book, enable_sms
from tests.support.radicale_server import Radicale, radicale
from tests.support.twilio_server import FakeTwilio, fake_twilio

ZONE = ZoneInfo("America/New_York")
ACCOUNT = "AC" + "1" * 32
TOKEN = "twilio-auth-token-" + "z" * 14


@pytest.fixture(scope="module")
def chrome() -> Iterator[WebDriver]:
    driver = start_chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def dav(tmp_path_factory) -> Iterator[Radicale]:
    with radicale(tmp_path_factory.mktemp("radicale")) as server:
        yield server


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with fake_twilio(ACCOUNT, TOKEN) as server:
        yield server


@contextlib.contextmanager
def served(app, port: int) -> Iterator[None]:
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        thread.join(10)


def test_the_link_in_the_sms_moves_the_appointment(database_url, dav, twilio, chrome, db):
    port = free_port()
    app = make_app(
        database_url,
        SECRET_KEY=SECRET_KEY,
        TWILIO_API_BASE_URL=twilio.base_url,
        PUBLIC_URL=f"http://127.0.0.1:{port}",  # the link's host is the served app
        CALENDAR_ALLOW_PRIVATE_TARGETS=True,
        CALENDAR_TIMEOUT_S=3,
    )
    rt = app.extensions[KEY]
    try:
        created = create_org(rt.uow(), name="Bright Smile Dental", timezone="America/New_York")
        org_id = created.org.id
        enable_sms(app, str(org_id), account=ACCOUNT)
        main_id = db.execute(
            "SELECT id FROM resources WHERE org_id = %s AND name = 'Main'", (org_id,)
        ).fetchone()[0]
        calendar = new_calendar(dav)
        link(app, main_id, calendar)
        sync = CalendarSync(rt.uow, rt.settings, clock=Clock(), jitter=lambda: 1.0)
        sync.sync_due()  # read once: a calendar never read blocks bookings (policy refuse)
        reference = book(app, Org(created.org, created.secret), local_start(hour=10))[
            "appointment"
        ]["reference"]
        clock = StoppedClock()
        notifier = Notifier(rt.uow, rt.settings, clock=clock)
        notifier.send_due()
        sync.sync_due()
        (confirmation,) = twilio.sent_to(PHONE_NUMBER)
        url = re.search(r"http://\S+/b/\S+", confirmation).group(0)

        with served(app, port):
            set_width(chrome, PHONE)
            chrome.get(url)
            source = chrome.page_source
            for word in FORBIDDEN_IN_RESPONSES:
                assert word not in source
            assert chrome.find_element(By.ID, "manage-reference").text == reference
            # With SCREENSHOTS_DIR set, what the caller sees is kept (for a look, or docs).
            if os.environ.get("SCREENSHOTS_DIR"):
                chrome.save_screenshot(
                    str(Path(os.environ["SCREENSHOTS_DIR"]) / "manage-phone.png")
                )
            # Laid out for a phone: nothing wider than the screen.
            assert chrome.execute_script("return document.documentElement.scrollWidth") <= PHONE[0]
            choice = Select(chrome.find_element(By.ID, "move-start"))
            target = next(
                o.get_attribute("value")
                for o in choice.options
                if "T14:00" in o.get_attribute("value")
            )
            choice.select_by_value(target)
            chrome.find_element(By.ID, "move-button").click()
            # Questions asked while the next page loads may fail: ask again.
            WebDriverWait(chrome, 30, ignored_exceptions=(WebDriverException,)).until(
                lambda c: "has moved" in c.find_element(By.TAG_NAME, "body").text
            )
            assert "14:00" in chrome.find_element(By.ID, "manage-when").text

        new_start = datetime.fromisoformat(target)
        assert (
            db.execute(
                "SELECT starts_at FROM appointments WHERE reference = %s", (reference,)
            ).fetchone()[0]
            == new_start
        )
        # The worker's next rounds: the calendar event moves, and the caller is texted.
        assert sync.sync_due() >= 1
        (event,) = calendar.events()
        (vevent,) = icalendar.Calendar.from_ical(event.data).walk("VEVENT")
        assert vevent["DTSTART"].dt == new_start
        clock.now = utc_now()
        notifier.send_due()
        moved = [body for body in twilio.sent_to(PHONE_NUMBER) if "moved" in body]
        assert len(moved) == 1 and url in moved[0]
    finally:
        rt.engine.dispose()
