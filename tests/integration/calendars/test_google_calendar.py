"""Google Calendar by OAuth, against the loopback fake of Google's OAuth and Calendar v3
(tests/support/fake_google.py), driven through our own client (adapters/oauth.py,
adapters/google_calendar.py): the connect flow and its `state`, pushes that are never
duplicated (a lost answer, 409), busy times read with a sync token (410 → full read),
transparent, declined, cancelled, all-day and recurring events, a revoked grant, throttling."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from booking_service.adapters.google_calendar import event_id
from booking_service.domain.caller_messages import calendar_uid
from booking_service.runtime.extensions import KEY
from tests.support.app import make_app
from tests.support.calendars import CALLER, book
from tests.support.fake_google import FakeGoogle, all_day, fake_google
from tests.support.fake_microsoft import FakeMicrosoft, fake_microsoft
from tests.support.helpers import (
    business_day,
    cli,
    envelope,
    error_of,
    post,
    result_of,
    tool_call,
)
from tests.support.oauth_calendars import come_back, connect, consent, oauth_settings, start

NY = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def google():
    with fake_google() as server:
        yield server


@pytest.fixture(scope="module")
def microsoft():
    with fake_microsoft() as server:
        yield server


@pytest.fixture
def app(database_url, google: FakeGoogle, microsoft: FakeMicrosoft):
    application = make_app(database_url, **oauth_settings(google, microsoft))
    yield application
    application.extensions[KEY].engine.dispose()


@pytest.fixture(autouse=True)
def fresh_calendar(google: FakeGoogle):
    with google.lock:
        google.calendars = {"primary": {}}
        google.throttle.clear()
        google.drop_next = None
        for token in list(google.refresh_tokens):
            google.refresh_tokens[token] = False


def zone_day(day) -> datetime:
    """Midnight starting `day` in the organization's zone, in UTC."""
    return datetime.combine(day, datetime.min.time(), NY).astimezone(UTC)


def local(day, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY)


def ours(google: FakeGoogle, org_id: int, reference: str) -> dict | None:
    return google.calendars["primary"].get(event_id(calendar_uid(org_id, reference)))


def busy_rows(db, link_id: int):
    return [
        (a.astimezone(UTC), b.astimezone(UTC))
        for a, b in db.execute(
            "SELECT starts_at, ends_at FROM calendar_busy WHERE link_id = %s ORDER BY starts_at",
            (link_id,),
        )
    ]


def poll_again(sync, clock, app) -> None:
    clock.advance(timedelta(seconds=app.extensions[KEY].settings.calendar_poll_seconds + 1))
    assert sync.poll_one()


# --- connecting -------------------------------------------------------------------------------


def test_connecting_links_the_calendar_once_and_a_replayed_or_expired_state_links_nothing(
    app, org, main_id, google, db
):
    url = start(app, main_id, "google")
    assert url.startswith(google.base + google.auth_path)
    assert "access_type=offline" in url and "code_challenge_method=S256" in url
    assert "calendar.events.owned" in url
    callback = consent(url)
    client = app.test_client()
    done = come_back(client, callback)
    assert done.status_code == 200, done.get_data(as_text=True)
    assert "Google Calendar" in done.get_data(as_text=True)
    links = [json.loads(x) for x in cli(app, "calendar", "list", str(org.id)).splitlines()]
    assert [(x["provider"], x["account"], x["calendar_id"]) for x in links] == [
        ("google", "owner@example.com", None)
    ]
    # The refresh token is sealed: neither printed nor stored in the clear.
    stored = db.execute("SELECT password FROM calendar_links").fetchone()[0]
    assert stored not in google.refresh_tokens
    assert not any(token in json.dumps(links) for token in google.refresh_tokens)

    # The same callback again (a replay): the state was used.
    again = come_back(client, callback)
    assert again.status_code == 400
    assert "expired or was already used" in again.get_data(as_text=True)
    # An expired state links nothing either.
    late = consent(start(app, main_id, "google"))
    db.execute("UPDATE calendar_connect_states SET expires_at = now() - interval '1 second'")
    assert come_back(client, late).status_code == 400
    # Refused consent.
    denied = consent(start(app, main_id, "google"), deny=True)
    refused = come_back(client, denied)
    assert refused.status_code == 400 and "access_denied" in refused.get_data(as_text=True)
    assert db.execute("SELECT count(*) FROM calendar_links").fetchone()[0] == 1


def test_one_state_completes_once_even_when_its_callback_arrives_twice_at_once(
    app, org, main_id, google, db
):
    callback = consent(start(app, main_id, "google"))
    barrier = threading.Barrier(2)
    answers: list[int] = []

    def arrive() -> None:
        client = app.test_client()
        first = client.get(callback)
        barrier.wait()
        answers.append(client.get(first.headers["location"]).status_code)

    threads = [threading.Thread(target=arrive) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(answers) == [200, 400]
    assert db.execute("SELECT count(*) FROM calendar_links").fetchone()[0] == 1


def test_connect_names_the_variables_when_a_provider_is_not_set_up(database_url, main_id, org):
    bare = make_app(database_url, PUBLIC_BASE_URL="https://book.example.com")
    try:
        out = cli(bare, "calendar", "connect", str(main_id), "--provider", "google", ok=False)
        assert "GOOGLE_CLIENT_ID" in out and "GOOGLE_CLIENT_SECRET" in out
    finally:
        bare.extensions[KEY].engine.dispose()


# --- pushing ----------------------------------------------------------------------------------


def test_a_booking_is_one_event_even_when_the_first_answer_is_lost_then_moved_and_removed(
    app, org, main_id, google, sync, clock, db, caplog
):
    caplog.set_level(logging.DEBUG)  # every logger, the HTTP client's too
    connect(app, main_id, "google", "--no-block")
    day = business_day(days=4)
    reference = book(app, org, f"{day}T10:00", name="Maria Lopez")
    # Google stores the insert, but its answer never arrives.
    google.drop_next = lambda method, path: method == "POST"
    assert sync.push_one()
    assert (
        db.execute("SELECT count(*) FROM calendar_pushes WHERE status = 'pending'").fetchone()[0]
        == 1
    )
    clock.advance(timedelta(minutes=1))
    assert sync.push_one()  # the retry: 409 (our id), then a patch
    assert len(google.live()) == 1
    event = ours(google, org.id, reference)
    assert event is not None
    assert event["summary"] == "Maria Lopez: appointment"
    assert datetime.fromisoformat(event["start"]["dateTime"]) == local(day, 10)
    assert event["start"]["timeZone"] == "America/New_York"
    assert "***0123" in event["description"] and "5550123" not in event["description"]

    move = envelope(
        tool_call("rescheduleAppointment", reference=reference, newStart=f"{day}T14:00"),
        customer=CALLER,
    )
    result_of(post(app.test_client(), org, move))
    assert sync.push_one()
    event = ours(google, org.id, reference)
    assert datetime.fromisoformat(event["start"]["dateTime"]) == local(day, 14)
    assert len(google.live()) == 1

    cancel = envelope(tool_call("cancelAppointment", reference=reference), customer=CALLER)
    result_of(post(app.test_client(), org, cancel))
    assert sync.push_one()
    assert google.live() == {}
    # Removing again (a retried cancel) is done too: Google answers 410 for a deleted event.
    db.execute(
        "INSERT INTO calendar_pushes (org_id, link_id, appointment_id) "
        "SELECT org_id, (SELECT id FROM calendar_links), id FROM appointments"
    )
    assert sync.push_one()
    assert (
        db.execute("SELECT count(*) FROM calendar_pushes WHERE status = 'pending'").fetchone()[0]
        == 0
    )
    # Neither the refresh token nor an access token was ever logged.
    secrets = [*google.refresh_tokens, *google.access_tokens]
    assert secrets and not any(secret in caplog.text for secret in secrets)


def test_throttling_is_waited_out_when_short_and_defers_the_push_when_long(
    app, org, main_id, google, sync, clock, db
):
    connect(app, main_id, "google", "--no-block")
    day = business_day(days=4)
    book(app, org, f"{day}T10:00")
    google.throttle.append((429, "1"))
    assert sync.push_one()
    assert len(google.live()) == 1  # waited one second, then added
    book(app, org, f"{day}T11:00", phone="+14155550999")
    google.throttle.extend([(429, "600"), (403, None)])
    assert sync.push_one()
    next_at, error = db.execute(
        "SELECT next_attempt_at, last_error FROM calendar_pushes WHERE status = 'pending'"
    ).fetchone()
    assert next_at >= clock.now + timedelta(seconds=590)
    assert "429" in error
    assert len(google.live()) == 1


# --- busy times -------------------------------------------------------------------------------


def test_busy_free_declined_cancelled_all_day_and_recurring_events_and_the_sync_token(
    app, org, main_id, google, sync, clock, db
):
    link = connect(app, main_id, "google", "--no-push")
    day = business_day(days=5)
    google.add_event(
        start={"dateTime": local(day, 9).isoformat()}, end={"dateTime": local(day, 10).isoformat()}
    )
    google.add_event(
        start={"dateTime": local(day, 11).isoformat()},
        end={"dateTime": local(day, 12).isoformat()},
        transparency="transparent",
    )
    google.add_event(
        start={"dateTime": local(day, 13).isoformat()},
        end={"dateTime": local(day, 14).isoformat()},
        attendees=[{"email": "owner@example.com", "self": True, "responseStatus": "declined"}],
    )
    gone = google.add_event(
        start={"dateTime": local(day, 15).isoformat()}, end={"dateTime": local(day, 16).isoformat()}
    )
    google.cancel(gone["id"])
    holiday = business_day(days=8)
    google.add_event(**all_day(holiday))
    # A weekly series of three, the second one cancelled.
    first = local(business_day(days=10), 16)
    series = google.add_series("FREQ=WEEKLY;COUNT=3", first, 30)
    google.cancel(series[1]["id"])

    full_before = google.full_lists
    assert sync.poll_one()
    expected = [
        (local(day, 9).astimezone(UTC), local(day, 10).astimezone(UTC)),
        (zone_day(holiday), zone_day(holiday + timedelta(days=1))),
        (first.astimezone(UTC), (first + timedelta(minutes=30)).astimezone(UTC)),
        (
            (first + timedelta(weeks=2)).astimezone(UTC),
            (first + timedelta(weeks=2, minutes=30)).astimezone(UTC),
        ),
    ]
    assert busy_rows(db, link["id"]) == sorted(expected)
    assert google.full_lists == full_before + 1

    # Refused when asked for, and not offered.
    refused = error_of(
        post(
            app.test_client(),
            org,
            envelope(tool_call("bookAppointment", start=f"{day}T09:00", name="A", phone=CALLER)),
        )
    )
    assert "10:00" in refused
    call = envelope(tool_call("checkAvailability", date=holiday.isoformat()), customer=CALLER)
    assert result_of(post(app.test_client(), org, call))["slots"] == []
    # The transparent and the declined events leave their times bookable.
    book(app, org, f"{day}T11:00")
    book(app, org, f"{day}T13:00", phone="+14155550999")

    # Incremental: the owner deletes the 9:00 event; the next read uses the sync token.
    nine = local(day, 9).isoformat()
    google.cancel(next(k for k, v in google.live().items() if v["start"].get("dateTime") == nine))
    poll_again(sync, clock, app)
    assert google.full_lists == full_before + 1
    assert (local(day, 9).astimezone(UTC), local(day, 10).astimezone(UTC)) not in busy_rows(
        db, link["id"]
    )
    # The token expired (410 Gone): everything is read again, nothing lost.
    google.expire_sync_tokens()
    before = busy_rows(db, link["id"])
    poll_again(sync, clock, app)
    assert google.full_lists == full_before + 2
    assert busy_rows(db, link["id"]) == before


def test_our_own_events_are_not_read_back_as_busy(app, org, main_id, google, sync, clock, db):
    link = connect(app, main_id, "google")
    day = business_day(days=4)
    assert sync.poll_one()
    book(app, org, f"{day}T10:00")
    assert sync.push_one()
    assert len(google.live()) == 1
    poll_again(sync, clock, app)
    assert busy_rows(db, link["id"]) == []


# --- a revoked grant --------------------------------------------------------------------------


def test_a_revoked_grant_refuses_tells_the_owner_and_reconnecting_restores_the_link(
    app, org, main_id, google, sync, clock, db, rt
):
    link = connect(app, main_id, "google")
    assert sync.poll_one()
    day = business_day(days=4)
    book(app, org, f"{day}T10:00")
    google.revoke_all()  # the owner removed our access in their Google account

    poll_again(sync, clock, app)
    status = json.loads(cli(app, "calendar", "status", str(org.id)))
    assert status["state"] == "reconnect_needed" and status["stale"] is True
    assert "invalid_grant" in status["last_error"]
    health = app.test_client().get("/api/health").get_json()
    assert health["calendars"] == "stale"
    events = db.execute(
        "SELECT type, payload FROM outbox_events WHERE type = 'calendar.disconnected'"
    ).fetchall()
    assert len(events) == 1 and events[0][1]["data"]["linkId"] == link["id"]
    # Refused (the link's policy), never booked blind.
    answer = error_of(
        post(
            app.test_client(),
            org,
            envelope(tool_call("bookAppointment", start=f"{day}T15:00", name="B", phone=CALLER)),
        )
    )
    assert "can't confirm" in answer
    # Neither polled nor pushed meanwhile; a second failure sends no second event.
    requests_before = len(google.api_requests)
    clock.advance(timedelta(hours=2))
    assert not sync.poll_one()
    assert not sync.push_one()
    assert len(google.api_requests) == requests_before

    # Reconnecting (the same resource and calendar) gives the same link its new grant.
    again = connect(app, main_id, "google")
    assert again["id"] == link["id"]
    status = json.loads(cli(app, "calendar", "status", str(org.id)))
    assert status["state"] != "reconnect_needed"
    assert sync.poll_one()
    status = json.loads(cli(app, "calendar", "status", str(org.id)))
    assert status["state"] == "ok"
    assert app.test_client().get("/api/health").get_json()["calendars"] == "ok"
