"""The whole Google Calendar connection in a real headless Chromium: the owner signs in, presses
"Connect Google Calendar" on Settings, allows access on the (fake) consent page, comes back
through /oauth/google/callback to Settings with the calendar linked, and the worker then
pushes a booking into it."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait
from werkzeug.serving import make_server

from booking_service.adapters.google_calendar import event_id
from booking_service.domain.caller_messages import calendar_uid
from booking_service.runtime.extensions import KEY
from booking_service.use_cases.accounts import add_user
from booking_service.use_cases.orgs import create_org
from booking_service.use_cases.sync_calendars import CalendarSync
from tests.support.app import Org, make_app
from tests.support.calendars import book
from tests.support.chromium import start_chromium
from tests.support.fake_google import fake_google
from tests.support.fake_microsoft import fake_microsoft
from tests.support.helpers import business_day
from tests.support.oauth_calendars import oauth_settings

PASSWORD = "a long enough password"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def served(app, port: int) -> Iterator[str]:
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(10)


def wait_for(chrome: WebDriver, condition) -> None:
    WebDriverWait(chrome, 30, ignored_exceptions=(WebDriverException,)).until(condition)


@pytest.fixture
def chrome() -> Iterator[WebDriver]:
    driver = start_chromium()
    try:
        yield driver
    finally:
        driver.quit()


def test_an_owner_connects_google_calendar_from_settings(database_url, db, chrome):
    port = _free_port()
    with fake_google() as google, fake_microsoft() as microsoft:
        settings = oauth_settings(google, microsoft)
        # The browser comes back to this very server (PUBLIC_BASE_URL is its address).
        settings["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
        app = make_app(database_url, **settings)
        rt = app.extensions[KEY]
        try:
            created = create_org(rt.uow(), name="Bright Smile Dental", timezone="America/New_York")
            org = Org(created.org, created.secret)
            add_user(rt.uow(), org.id, "owner@bright.example", "owner", PASSWORD)
            with served(app, port) as base:
                chrome.get(base + "/app/login")
                chrome.find_element(By.ID, "email").send_keys("owner@bright.example")
                chrome.find_element(By.ID, "password").send_keys(PASSWORD)
                chrome.find_element(By.XPATH, "//button[normalize-space()='Sign in']").click()
                wait_for(chrome, lambda c: "/app/login" not in c.current_url)

                chrome.get(base + "/app/settings#calendars")
                form = chrome.find_element(By.ID, "connect-google").find_element(By.XPATH, "./..")
                Select(form.find_element(By.NAME, "resource_id")).select_by_visible_text("Main")
                chrome.find_element(By.ID, "connect-google").click()

                # Google's consent page (the fake), then back to our callback and Settings.
                wait_for(chrome, lambda c: c.current_url.startswith(google.base))
                assert "allow booking_service to use your calendar" in chrome.page_source
                chrome.find_element(By.ID, "allow").click()
                wait_for(chrome, lambda c: "/app/settings" in c.current_url)
                body = chrome.find_element(By.TAG_NAME, "body").text
                assert "Google Calendar (owner@example.com) is connected." in body
                assert "owner@example.com" in body

            link = db.execute(
                "SELECT provider, account, push, block, reconnect_needed FROM calendar_links"
            ).fetchall()
            assert link == [("google", "owner@example.com", True, True, False)]
            # Linked for real: read (an unread blocking calendar is stale, not free), then a
            # booking reaches the Google calendar.
            sync = CalendarSync(rt.uow, rt.settings)
            assert sync.poll_one()
            reference = book(app, org, f"{business_day(days=3)}T10:00")
            while sync.push_one():
                pass
            assert event_id(calendar_uid(org.id, reference)) in google.live()
        finally:
            rt.engine.dispose()
