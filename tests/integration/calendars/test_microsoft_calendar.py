"""Microsoft 365 by OAuth, against the loopback fake of the Microsoft identity platform and
Graph (tests/support/fake_microsoft.py), through our own client (adapters/oauth.py,
adapters/microsoft_calendar.py): one event per booking (transactionId, Graph's id kept),
moved and removed; busy, free, declined, all-day and recurring events; a rotated refresh
token kept; a revoked grant (AADSTS) refuses and tells the owner."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from booking_service.runtime.extensions import KEY
from tests.support.app import make_app
from tests.support.calendars import CALLER, book
from tests.support.fake_google import FakeGoogle, fake_google
from tests.support.fake_microsoft import FakeMicrosoft, day_span, fake_microsoft
from tests.support.helpers import business_day, cli, envelope, error_of, post, result_of, tool_call
from tests.support.oauth_calendars import connect, oauth_settings

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
def fresh_calendar(microsoft: FakeMicrosoft):
    with microsoft.lock:
        microsoft.events.clear()
        microsoft.throttle.clear()
        microsoft.drop_next = None


def zone_day(day) -> datetime:
    """Midnight starting `day` in the organization's zone, in UTC."""
    return datetime.combine(day, datetime.min.time(), NY).astimezone(UTC)


def local(day, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY)


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


def test_connect_push_once_with_a_lost_answer_move_and_remove(
    app, org, main_id, microsoft, sync, clock, db
):
    link = connect(app, main_id, "microsoft", "--no-block")
    assert link["account"] == "owner@example.com"
    scopes = microsoft.token_requests[-1]
    assert scopes["grant_type"] in ("authorization_code", "refresh_token")
    day = business_day(days=4)
    reference = book(app, org, f"{day}T10:00", name="Maria Lopez")
    microsoft.drop_next = lambda method, path: method == "POST" and path.endswith("/events")
    assert sync.push_one()
    clock.advance(timedelta(minutes=1))
    assert sync.push_one()  # the retry's transactionId finds the event the lost answer made
    assert len(microsoft.events) == 1
    (event,) = microsoft.events.values()
    assert event["subject"] == "Maria Lopez: appointment"
    assert event["start"] == local(day, 10)
    assert "***0123" in event["body"]["content"]
    kept = db.execute("SELECT remote_id FROM calendar_remote_events").fetchall()
    assert kept == [(event["id"],)]

    move = envelope(
        tool_call("rescheduleAppointment", reference=reference, newStart=f"{day}T14:00"),
        customer=CALLER,
    )
    result_of(post(app.test_client(), org, move))
    assert sync.push_one()
    assert list(microsoft.events) == [event["id"]]  # patched, same id
    assert microsoft.events[event["id"]]["start"] == local(day, 14)

    cancel = envelope(tool_call("cancelAppointment", reference=reference), customer=CALLER)
    result_of(post(app.test_client(), org, cancel))
    assert sync.push_one()
    assert microsoft.events == {}
    assert db.execute("SELECT count(*) FROM calendar_remote_events").fetchone()[0] == 0


def test_an_event_deleted_by_hand_is_made_again_on_the_next_change(
    app, org, main_id, microsoft, sync, db
):
    connect(app, main_id, "microsoft", "--no-block")
    day = business_day(days=4)
    reference = book(app, org, f"{day}T10:00")
    assert sync.push_one()
    microsoft.events.clear()  # the owner deleted it in Outlook
    move = envelope(
        tool_call("rescheduleAppointment", reference=reference, newStart=f"{day}T11:00"),
        customer=CALLER,
    )
    result_of(post(app.test_client(), org, move))
    assert sync.push_one()
    (event,) = microsoft.events.values()
    assert event["start"] == local(day, 11)


def test_busy_free_declined_all_day_recurring_and_own_events(
    app, org, main_id, microsoft, sync, clock, db
):
    link = connect(app, main_id, "microsoft")
    day = business_day(days=5)
    microsoft.add_event(local(day, 9), local(day, 10))
    microsoft.add_event(local(day, 11), local(day, 12), showAs="free")
    microsoft.add_event(local(day, 13), local(day, 14), responseStatus={"response": "declined"})
    microsoft.add_event(local(day, 15), local(day, 16), isCancelled=True)
    holiday = business_day(days=8)
    start, end = day_span(holiday, ZoneInfo("UTC"))
    microsoft.add_event(start, end, all_day=True)
    first = local(business_day(days=10), 16)
    series = microsoft.add_event(first, first + timedelta(minutes=30), rule="FREQ=WEEKLY;COUNT=3")
    microsoft.cancel_occurrence(series["id"], first + timedelta(weeks=1))
    microsoft.page_size = 2  # several pages of calendarView

    assert sync.poll_one()
    assert busy_rows(db, link["id"]) == sorted(
        [
            (local(day, 9).astimezone(UTC), local(day, 10).astimezone(UTC)),
            (zone_day(holiday), zone_day(holiday + timedelta(days=1))),
            (first.astimezone(UTC), (first + timedelta(minutes=30)).astimezone(UTC)),
            (
                (first + timedelta(weeks=2)).astimezone(UTC),
                (first + timedelta(weeks=2, minutes=30)).astimezone(UTC),
            ),
        ]
    )
    refused = error_of(
        post(
            app.test_client(),
            org,
            envelope(tool_call("bookAppointment", start=f"{day}T09:30", name="A", phone=CALLER)),
        )
    )
    assert "10:00" in refused
    book(app, org, f"{day}T11:00", phone="+14155550999")  # "free" does not block
    book(app, org, f"{day}T13:00", phone="+14155550888")  # declined does not block
    # Our own events, pushed, are not read back as busy time.
    while sync.push_one():
        pass
    assert len(microsoft.ours()) == 2
    poll_again(sync, clock, app)
    assert len(busy_rows(db, link["id"])) == 4


def test_a_rotated_refresh_token_is_kept_and_a_revoked_grant_refuses(
    app, org, main_id, microsoft, sync, clock, db
):
    link = connect(app, main_id, "microsoft", "--when-stale", "book")
    sealed = db.execute("SELECT password FROM calendar_links").fetchone()[0]
    assert sync.poll_one()
    # Microsoft answered the refresh with a new refresh token: it replaced the old one.
    assert db.execute("SELECT password FROM calendar_links").fetchone()[0] != sealed

    microsoft.revoke_all()
    clock.advance(timedelta(minutes=2))
    # The cached access token is refused (401), the refresh then says AADSTS50173.
    assert sync.poll_one()
    status = json.loads(cli(app, "calendar", "status", str(org.id)))
    assert status["state"] == "reconnect_needed"
    assert "AADSTS50173" in status["last_error"]
    assert (
        db.execute(
            "SELECT count(*) FROM outbox_events WHERE type = 'calendar.disconnected'"
        ).fetchone()[0]
        == 1
    )
    assert link["id"] == status["id"]
    # --when-stale book: booked, but marked unconfirmed.
    day = business_day(days=4)
    body = envelope(tool_call("bookAppointment", start=f"{day}T10:00", name="C", phone=CALLER))
    result = result_of(post(app.test_client(), org, body))
    assert result["status"] == "booked"
    assert db.execute("SELECT unconfirmed FROM appointments").fetchone()[0] is True


def test_a_throttled_read_waits_at_least_the_retry_after_it_was_given(
    app, org, main_id, microsoft, sync, clock, db
):
    connect(app, main_id, "microsoft", "--no-push")
    microsoft.throttle.append((429, "900"))
    assert sync.poll_one()
    next_poll, error, failures = db.execute(
        "SELECT next_poll_at, last_error, consecutive_failures FROM calendar_links"
    ).fetchone()
    assert failures == 1 and "429" in error
    assert next_poll >= clock.now + timedelta(seconds=890)
    clock.advance(timedelta(seconds=300))
    assert not sync.poll_one()  # not before the provider said
    clock.advance(timedelta(seconds=700))
    assert sync.poll_one()
    status = json.loads(cli(app, "calendar", "status", str(org.id)))
    assert status["state"] == "ok"


def test_a_create_whose_answer_was_lost_is_still_removed_when_cancelled_before_the_retry(
    app, org, main_id, microsoft, sync, clock, db
):
    connect(app, main_id, "microsoft", "--no-block")
    reference = book(app, org, f"{business_day(days=4)}T10:00")
    microsoft.drop_next = lambda method, path: method == "POST" and path.endswith("/events")
    assert sync.push_one()
    assert len(microsoft.events) == 1  # made, but we never learnt its id
    cancel = envelope(tool_call("cancelAppointment", reference=reference), customer=CALLER)
    result_of(post(app.test_client(), org, cancel))
    clock.advance(timedelta(minutes=1))
    assert sync.push_one()
    assert microsoft.events == {}  # found by its transactionId and deleted: no orphan
    assert db.execute("SELECT count(*) FROM calendar_remote_events").fetchone()[0] == 0
