"""The owner's web page in a real headless Chromium (Debian's, through selenium), against the
app served on loopback and the test's own PostgreSQL database.

`make screenshots` runs the last test with SCREENSHOTS_DIR=docs/screenshots, so the README's
pictures are of the pages these tests check.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from booking_service.use_cases.accounts import add_user
from booking_service.use_cases.orgs import update_rules
from booking_service.use_cases.resources import add_resource, add_service
from tests.support.app import FORBIDDEN_IN_RESPONSES
from tests.support.chromium import DESKTOP, PHONE, serve, set_width, start_chromium
from tests.support.helpers import (
    booked,
    booking,
    business_day,
    count,
    envelope,
    local_start,
    post,
    result_of,
    tool_call,
)

PASSWORD = "a long enough password"
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def chrome() -> Iterator[WebDriver]:
    driver = start_chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def site(app, chrome) -> Iterator[str]:
    chrome.delete_all_cookies()
    set_width(chrome, DESKTOP)
    with serve(app) as url:
        yield url
    chrome.delete_all_cookies()  # the cookie jar is per host:port; the next test has another


@pytest.fixture
def owner(runtime, org):
    return add_user(runtime.uow(), org.id, "owner@bright.example", "owner", PASSWORD).account


class Page:
    """What a test reads off the browser's current page."""

    def __init__(self, chrome: WebDriver, base: str):
        self.chrome = chrome
        self.base = base

    def open(self, path: str) -> Page:
        self.chrome.get(self.base + path)
        self.check()
        return self

    def check(self) -> None:
        source = self.chrome.page_source
        for word in FORBIDDEN_IN_RESPONSES:
            assert word not in source, f"the page leaks {word!r}"

    def field(self, element_id: str):
        return self.chrome.find_element(By.ID, element_id)

    def fill(self, **values: str) -> Page:
        for element_id, value in values.items():
            element = self.field(element_id)
            element.clear()
            element.send_keys(value)
        return self

    def press(self, text: str) -> Page:
        """Click the button with this text (and wait for the page it leads to)."""
        button = self.chrome.find_element(By.XPATH, f"//button[normalize-space()='{text}']")
        before = self.chrome.execute_script("return performance.timeOrigin")
        button.click()
        # The click returns before the form's answer arrives: wait for the next document (each
        # has its own time origin) to finish loading. Questions asked mid-navigation may fail.
        WebDriverWait(self.chrome, 30, ignored_exceptions=(WebDriverException,)).until(
            lambda c: (
                c.execute_script(
                    "return document.readyState === 'complete' && performance.timeOrigin"
                )
                not in (False, None, before)
            )
        )
        self.check()
        return self

    @property
    def heading(self) -> str:
        return self.chrome.find_element(By.TAG_NAME, "h1").text

    @property
    def text(self) -> str:
        return self.chrome.find_element(By.TAG_NAME, "body").text

    def sign_in(self, email: str, password: str) -> Page:
        self.open("/app/login")
        return self.fill(email=email, password=password).press("Sign in")


@pytest.fixture
def page(chrome, site) -> Page:
    return Page(chrome, site)


def voice_booking(app, org, **arguments) -> str:
    body = envelope(tool_call(**booking(**arguments)))
    return booked(post(app.test_client(), org, body))["appointment"]["reference"]


# --- the flows ----------------------------------------------------------------------------------


def test_sign_in_see_a_voice_booking_cancel_it_and_the_assistant_no_longer_finds_it(
    app, org, owner, page
):
    reference = voice_booking(app, org)
    day = local_start()[:10]
    page.sign_in(owner.email, PASSWORD)
    assert page.heading == "Agenda"
    page.open(f"/app/agenda?date={day}")
    entry = page.chrome.find_element(By.CSS_SELECTOR, ".appointment")
    assert reference in entry.text and "Maria Lopez" in entry.text and "10:00" in entry.text
    assert "Times in America/New_York" in page.text

    entry.find_element(By.TAG_NAME, "a").click()
    assert page.heading == f"Appointment {reference}"
    page.fill(reason="The dentist is ill").press("Cancel this appointment")
    assert f"Cancelled {reference}." in page.text
    assert page.field("appointment-status").text.startswith("Cancelled")

    found = result_of(post(app.test_client(), org, envelope(tool_call("findAppointments"))))
    assert found["status"] == "not_found" and found["appointments"] == []
    page.open(f"/app/agenda?date={day}")
    assert "Cancelled" in page.chrome.find_element(By.CSS_SELECTOR, ".status-cancelled").text


def test_book_by_hand_loses_a_race_to_the_exclusion_constraint_with_a_readable_message(
    app, org, owner, page, database_url, db
):
    """The time is free when the page is drawn and when the booking checks it; a rival
    booking, not yet committed, holds it. The insert waits for the rival, the exclusion
    constraint refuses it, and the receptionist reads why and what else is free."""
    day = local_start()[:10]
    page.sign_in(owner.email, PASSWORD)
    page.open(f"/app/book?date={day}")
    Select(page.field("start")).select_by_visible_text("10:00 (Main)")
    page.fill(name="Walk In", phone="(202) 555-0147", notes="first visit")

    resource = count(db, "SELECT id FROM resources WHERE org_id = %s", org.id)
    rival = psycopg.connect(database_url.replace("+psycopg", ""))
    try:
        contact = rival.execute(
            "INSERT INTO contacts (org_id, phone, name) VALUES (%s, '+12025550199', 'Rival') "
            "RETURNING id",
            (org.id,),
        ).fetchone()[0]
        rival.execute(
            "INSERT INTO appointments (org_id, contact_id, resource_id, reference, starts_at, "
            "ends_at, blocked_until) VALUES (%s, %s, %s, 'RIVAL1', "
            "(%s::date + time '10:00') AT TIME ZONE 'America/New_York', "
            "(%s::date + time '10:30') AT TIME ZONE 'America/New_York', "
            "(%s::date + time '10:30') AT TIME ZONE 'America/New_York')",
            (org.id, contact, resource, day, day, day),
        )
        clicked = threading.Thread(target=lambda: page.press("Book"), daemon=True)
        clicked.start()
        deadline = time.monotonic() + 20
        while not count(
            db,
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE 'INSERT INTO appointments%%'",
        ):
            assert time.monotonic() < deadline, "the booking never waited for the rival"
            time.sleep(0.05)
        rival.commit()
    finally:
        rival.close()
    clicked.join(30)

    error = page.chrome.find_element(By.ID, "form-error").text
    assert error.startswith("That time was just taken by another booking.")
    assert "Nearest free times:" in error
    assert page.field("name").get_attribute("value") == "Walk In"  # nothing typed is lost
    assert count(db, "SELECT count(*) FROM appointments") == 1

    # Picking another time from the refreshed list books it.
    Select(page.field("start")).select_by_visible_text("11:00 (Main)")
    page.press("Book")
    assert page.heading.startswith("Appointment ")
    assert "Booked " in page.text and "Walk In" in page.text
    assert count(db, "SELECT count(*) FROM appointments WHERE name = 'Walk In'") == 1


def test_a_hostile_name_is_shown_as_text(app, org, owner, page):
    reference = voice_booking(app, org, name=HOSTILE)
    page.sign_in(owner.email, PASSWORD)
    page.open(f"/app/agenda?date={local_start()[:10]}")
    assert page.chrome.find_element(By.CSS_SELECTOR, ".appointment .name").text == HOSTILE
    page.open(f"/app/appointments/{reference}")
    assert page.field("appointment-name").text == HOSTILE
    assert page.chrome.find_elements(By.TAG_NAME, "img") == []


def test_another_organizations_appointment_is_not_found(app, make_org, org, owner, page):
    other = make_org(name="Across The Street Dental")
    reference = voice_booking(app, other)
    page.sign_in(owner.email, PASSWORD)
    page.open(f"/app/appointments/{reference}")
    assert page.heading == "Not found"
    assert reference not in page.text


def test_a_form_without_its_csrf_token_is_refused(app, org, owner, page, db):
    reference = voice_booking(app, org)
    page.sign_in(owner.email, PASSWORD)
    page.open(f"/app/appointments/{reference}")
    # What a forged cross-site form lacks: the token (removed here before sending).
    page.chrome.execute_script(
        "document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove())"
    )
    page.press("Cancel this appointment")
    assert page.heading == "The form could not be accepted"
    assert count(db, "SELECT count(*) FROM appointments WHERE status = 'booked'") == 1


def test_ten_failed_sign_ins_lock_the_email(owner, page):
    for attempt in range(10):
        page.sign_in(owner.email, f"wrong password {attempt}")
    assert "Too many failed sign-ins for this email." in page.text
    page.sign_in(owner.email, PASSWORD)
    assert "Too many failed sign-ins for this email." in page.text
    assert page.heading == "Sign in"


def test_the_sign_in_form_is_keyboard_reachable_with_labels(page):
    page.open("/app/login")
    for element_id in ("email", "password"):
        label = page.chrome.find_element(By.CSS_SELECTOR, f"label[for={element_id}]")
        assert label.text
    page.field("email").click()
    page.chrome.switch_to.active_element.send_keys(Keys.TAB)
    assert page.chrome.switch_to.active_element.get_attribute("id") == "password"
    page.chrome.switch_to.active_element.send_keys(Keys.TAB)
    assert page.chrome.switch_to.active_element.text == "Sign in"


# --- every page, at desktop and phone width ----------------------------------------------------


def _demo(app, runtime, org, database_url) -> tuple[str, date]:
    """A believable diary: two people, services, bookings by voice and by hand, one cancelled."""
    add_resource(runtime.uow(), org.id, "Hygienist Kim", ["mon-fri 08:00-16:00"])
    add_service(runtime.uow(), org.id, "Check-up", 30)
    add_service(runtime.uow(), org.id, "Cleaning", 60)
    update_rules(runtime.uow(), org.id, horizon_days=90)
    people = [
        ("Maria Lopez", "Check-up", 9, "+12025550101"),
        ("James O'Neill", "Cleaning", 9, "+12025550102"),
        ("Aisha Khan", "Check-up", 11, "+12025550103"),
        ("Tom Becker", "Cleaning", 14, "+12025550104"),
    ]
    references = []
    for name, service, hour, phone in people:
        body = envelope(
            tool_call(**booking(name=name, service=service, start=local_start(hour=hour))),
            customer=phone,
            call_id=f"demo-{phone}",
        )
        references.append(booked(post(app.test_client(), org, body))["appointment"]["reference"])
    cancel = envelope(
        tool_call("cancelAppointment", reference=references[3], reason="Feeling better"),
        customer="+12025550104",
        call_id="demo-cancel",
    )
    result_of(post(app.test_client(), org, cancel))
    return references[0], business_day(days=7)


def test_every_page_fits_a_phone_and_a_desktop(
    app, runtime, org, owner, page, database_url, tmp_path
):
    """Each page at 1280 and 375 px wide: nothing wider than the screen, every field labelled.
    With SCREENSHOTS_DIR set (`make screenshots`) the pictures are kept there."""
    reference, day = _demo(app, runtime, org, database_url)
    folder = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.open("/app/login")
    pages = {"login": "/app/login"}
    _shoot(page, folder, pages)
    page.sign_in(owner.email, PASSWORD)
    pages = {
        "agenda-day": f"/app/agenda?date={day.isoformat()}",
        "agenda-week": f"/app/agenda?date={day.isoformat()}&view=week",
        "appointment": f"/app/appointments/{reference}?move_date={day.isoformat()}",
        "book": f"/app/book?date={day.isoformat()}&service=Check-up",
        "settings": "/app/settings",
    }
    _shoot(page, folder, pages)
    assert len(list(folder.glob("*.png"))) == 2 * 6


def _shoot(page: Page, folder: Path, pages: dict[str, str]) -> None:
    for name, path in pages.items():
        for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
            set_width(page.chrome, size)
            page.open(path)
            wide = page.chrome.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert wide <= 0, f"{name} is {wide}px wider than a {size[0]}px screen"
            unlabelled = page.chrome.execute_script(
                "return [...document.querySelectorAll("
                "'input:not([type=hidden]), select, textarea')]"
                ".filter(e => !document.querySelector(`label[for='${e.id}']`)).map(e => e.name)"
            )
            assert unlabelled == [], f"{name}: fields without a label: {unlabelled}"
            height = page.chrome.execute_script("return document.documentElement.scrollHeight")
            set_width(page.chrome, (size[0], min(int(height), 4000)))
            page.chrome.save_screenshot(str(folder / f"{name}-{label}.png"))
    set_width(page.chrome, DESKTOP)
