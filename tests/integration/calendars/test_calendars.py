"""Calendar sync against a real CalDAV server on loopback: Radicale, driven through `caldav`.

Bookings made through the webhook are pushed by the worker's CalendarSync (one VEVENT per
appointment, same UID on every push), the owner's own events are polled back as busy time, a
stale calendar gets its policy, and the ICS feed and the listing show the diary. Time for the
worker is an injected clock, so "15 minutes without a good read" takes no waiting.
"""

from __future__ import annotations

import http.server
import json
import threading
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest

from booking_service.adapters.caldav import CalDavCalendar
from booking_service.domain.caller_messages import calendar_uid
from booking_service.domain.times import utc_now
from booking_service.runtime.extensions import KEY
from booking_service.use_cases.resources import add_resource
from booking_service.use_cases.sync_calendars import CalendarSync
from tests.support.app import make_app
from tests.support.calendars import (
    CALLER,
    add_event,
    book,
    link,
    new_calendar,
    pending,
)
from tests.support.helpers import (
    booked,
    booking,
    business_day,
    cli,
    envelope,
    error_of,
    post,
    result_of,
    tool_call,
)
from tests.support.radicale_server import PASSWORD, USER, radicale

NY = ZoneInfo("America/New_York")


def events(calendar) -> dict[str, icalendar.Event]:
    """The calendar's VEVENTs by UID (asserting each UID is stored once)."""
    found: dict[str, icalendar.Event] = {}
    for item in calendar.events():
        for vevent in item.icalendar_instance.walk("VEVENT"):
            uid = str(vevent["UID"])
            assert uid not in found, f"{uid} stored twice"
            found[uid] = vevent
    return found


def move(app, org, reference: str, start: str, call_id: str = "call-1") -> dict:
    """rescheduleAppointment from the booking caller's phone; its decoded result."""
    body = envelope(
        tool_call("rescheduleAppointment", reference=reference, newStart=start),
        customer=CALLER,
        call_id=call_id,
    )
    return result_of(post(app.test_client(), org, body))


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY)


def busy_rows(db, link_id: int) -> list[tuple[datetime, datetime]]:
    return [
        (a.astimezone(UTC), b.astimezone(UTC))
        for a, b in db.execute(
            "SELECT starts_at, ends_at FROM calendar_busy WHERE link_id = %s ORDER BY starts_at",
            (link_id,),
        )
    ]


# --- push -------------------------------------------------------------------------------------


def test_a_booking_becomes_one_event_and_repeated_pushes_never_make_a_second(
    app, org, main_id, dav, sync, db
):
    calendar = new_calendar(dav)
    made = link(app, main_id, calendar, "--no-block")
    day = business_day(days=4)
    reference = book(app, org, f"{day}T10:00", service=None, name="Maria Lopez")

    assert sync.sync_due() == 1
    uid = calendar_uid(org.id, reference)
    stored = events(calendar)
    assert list(stored) == [uid]
    event = stored[uid]
    assert event.decoded("DTSTART") == local(day, 10)
    assert event["DTSTART"].params["TZID"] == "America/New_York"
    assert event.decoded("DTEND") == local(day, 10, 30)
    assert str(event["SUMMARY"]) == "Maria Lopez: appointment"
    description = str(event["DESCRIPTION"])
    assert f"Reference {reference}" in description and "***0123" in description
    assert "5550123" not in calendar.events()[0].data  # the whole number is never sent

    # The same push five more times: still one event.
    for _ in range(5):
        db.execute(
            "INSERT INTO calendar_pushes (org_id, link_id, appointment_id) "
            "SELECT org_id, %s, id FROM appointments WHERE reference = %s",
            (made["id"], reference),
        )
    assert sync.sync_due() == 1  # one claim covers every pending push of the appointment
    assert list(events(calendar)) == [uid]
    assert pending(db, made["id"]) == 0


def test_a_push_whose_outcome_was_lost_is_retried_onto_the_same_event(
    app, org, main_id, dav, sync, db, rt, monkeypatch
):
    calendar = new_calendar(dav)
    made = link(app, main_id, calendar, "--no-block")
    reference = book(app, org, f"{business_day(days=4)}T11:00")
    # The PUT reaches the server but the worker dies before recording it: its transaction
    # rolls back and the push is still pending.
    from booking_service.persistence.repositories.calendars import CalendarRepository

    real = CalendarRepository.pushes_done

    def crash(self, *args):
        raise RuntimeError("worker died")

    monkeypatch.setattr(CalendarRepository, "pushes_done", crash)
    with pytest.raises(RuntimeError):
        sync.sync_due()
    assert len(events(calendar)) == 1 and pending(db, made["id"]) == 1
    monkeypatch.setattr(CalendarRepository, "pushes_done", real)
    assert sync.sync_due() == 1
    assert list(events(calendar)) == [calendar_uid(org.id, reference)]
    assert pending(db, made["id"]) == 0


def test_a_reschedule_updates_the_same_uid_with_sequence_up_and_a_cancel_removes_it(
    app, org, main_id, dav, sync, db
):
    calendar = new_calendar(dav)
    link(app, main_id, calendar, "--no-block")
    day = business_day(days=4)
    reference = book(app, org, f"{day}T10:00")
    sync.sync_due()
    uid = calendar_uid(org.id, reference)
    first = events(calendar)[uid]

    move(app, org, reference, f"{day}T14:00")
    sync.sync_due()
    second = events(calendar)[uid]
    assert len(events(calendar)) == 1
    assert second["SEQUENCE"] == first["SEQUENCE"] + 1
    assert second.decoded("DTSTART") == local(day, 14)
    assert second.decoded("DTEND") == local(day, 14, 30)

    cancel = envelope(tool_call("cancelAppointment", reference=reference), customer=CALLER)
    result_of(post(app.test_client(), org, cancel))
    sync.sync_due()
    assert events(calendar) == {}


def test_a_move_to_another_resource_moves_the_event_to_that_resources_calendar(
    app, org, main_id, dav, sync, db, rt
):
    other = add_resource(rt.uow(), org.id, "Dr Chen", ["mon-fri 09:00-17:00"])
    main_calendar, other_calendar = new_calendar(dav), new_calendar(dav)
    link(app, main_id, main_calendar, "--no-block")
    link(app, other.id, other_calendar, "--no-block")
    day = business_day(days=4)
    reference = book(app, org, f"{day}T10:00", resource="Main")
    # Main is busy at 14:00 (another caller): the move can only go to Dr Chen.
    book(app, org, f"{day}T14:00", resource="Main", phone="+14155550999")
    sync.sync_due()
    uid = calendar_uid(org.id, reference)
    assert uid in events(main_calendar)

    assert "Dr Chen" in json.dumps(move(app, org, reference, f"{day}T14:00"))
    sync.sync_due()
    assert uid not in events(main_calendar)
    assert events(other_calendar)[uid].decoded("DTSTART") == local(day, 14)


def test_linking_a_calendar_pushes_what_is_already_booked(app, org, main_id, dav, sync):
    day = business_day(days=3)
    references = [book(app, org, f"{day}T{h}:00") for h in (10, 11)]
    calendar = new_calendar(dav)
    link(app, main_id, calendar, "--no-block")
    sync.sync_due()
    assert sorted(events(calendar)) == sorted(calendar_uid(org.id, r) for r in references)


# --- block ------------------------------------------------------------------------------------


def test_the_owners_events_block_exactly_their_ranges(app, org, main_id, dav, sync, db, clock):
    calendar = new_calendar(dav)
    made = link(app, main_id, calendar, "--no-push")
    # A weekly course across the spring DST change (14 March 2027), an all-day holiday, a
    # "free" event, an event in London's time, and a cancelled one.
    add_event(
        calendar,
        "course",
        "DTSTART;TZID=America/New_York:20270302T100000",
        "DTEND;TZID=America/New_York:20270302T110000",
        "RRULE:FREQ=WEEKLY;COUNT=3",
    )
    add_event(calendar, "holiday", "DTSTART;VALUE=DATE:20270115", "DTEND;VALUE=DATE:20270116")
    add_event(
        calendar, "free", "DTSTART:20270120T150000Z", "DTEND:20270120T160000Z", "TRANSP:TRANSPARENT"
    )
    add_event(
        calendar,
        "london",
        "DTSTART;TZID=Europe/London:20270121T150000",
        "DTEND;TZID=Europe/London:20270121T160000",
    )
    add_event(
        calendar, "gone", "DTSTART:20270122T150000Z", "DTEND:20270122T160000Z", "STATUS:CANCELLED"
    )
    clock.offset = datetime(2026, 12, 1, tzinfo=UTC) - utc_now()
    assert sync.sync_due() == 1
    assert busy_rows(db, made["id"]) == [
        (datetime(2027, 1, 15, 5, tzinfo=UTC), datetime(2027, 1, 16, 5, tzinfo=UTC)),
        (datetime(2027, 1, 21, 15, tzinfo=UTC), datetime(2027, 1, 21, 16, tzinfo=UTC)),
        (datetime(2027, 3, 2, 15, tzinfo=UTC), datetime(2027, 3, 2, 16, tzinfo=UTC)),
        (datetime(2027, 3, 9, 15, tzinfo=UTC), datetime(2027, 3, 9, 16, tzinfo=UTC)),
        (datetime(2027, 3, 16, 14, tzinfo=UTC), datetime(2027, 3, 16, 15, tzinfo=UTC)),
    ]


def test_an_event_added_in_the_calendar_stops_that_time_being_offered_or_booked(
    app, org, main_id, dav, sync, db, clock
):
    calendar = new_calendar(dav)
    link(app, main_id, calendar)  # pushes and blocks
    day = business_day(days=5)
    client = app.test_client()
    sync.sync_due()

    def offered() -> list[str]:
        call = envelope(tool_call("checkAvailability", date=day.isoformat()), customer=CALLER)
        return [s["start"][11:16] for s in result_of(post(client, org, call))["slots"]]

    assert offered()[:3] == ["09:00", "09:15", "09:30"]
    start = local(day, 9).astimezone(UTC)
    add_event(
        calendar,
        "dentist-course",
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}",
        f"DTEND:{start + timedelta(hours=1):%Y%m%dT%H%M%SZ}",
    )
    assert offered()[0] == "09:00"  # not read yet: the booking path never calls the server
    clock.advance(timedelta(seconds=rt_poll(app) + 1))
    sync.sync_due()
    assert offered()[:2] == ["10:00", "10:15"]
    # Another organization's event (an invitation its owner accepted) is busy time too; only
    # this organization's own pushes are not.
    other = start + timedelta(hours=2)
    add_event(
        calendar,
        calendar_uid(org.id + 1000, "ABCDEF"),
        f"DTSTART:{other:%Y%m%dT%H%M%SZ}",
        f"DTEND:{other + timedelta(minutes=30):%Y%m%dT%H%M%SZ}",
    )
    clock.advance(timedelta(seconds=rt_poll(app) + 1))
    sync.sync_due()
    assert "11:00" not in offered() and "11:30" in offered()

    refused = error_of(
        post(client, org, envelope(tool_call(**booking(start=f"{day}T09:30")), customer=CALLER))
    )
    assert "10:00" in refused  # refused like any taken time, with the nearest alternatives
    assert db.execute("SELECT count(*) FROM appointments").fetchone()[0] == 0
    # A booking after it is taken, and our own pushed event is not read back as busy time.
    reference = book(app, org, f"{day}T10:00")
    sync.sync_due()
    clock.advance(timedelta(seconds=rt_poll(app) + 1))
    sync.sync_due()
    assert offered()[0] == "10:30"
    assert calendar_uid(org.id, reference) in events(calendar)
    link_id = db.execute("SELECT id FROM calendar_links").fetchone()[0]
    assert busy_rows(db, link_id) == [
        (start, start + timedelta(hours=1)),
        (other, other + timedelta(minutes=30)),
    ]


def rt_poll(app) -> int:
    return app.extensions[KEY].settings.calendar_poll_seconds


# --- an unreachable calendar ----------------------------------------------------------------


def test_a_calendar_server_outage_retries_pushes_applies_the_policy_and_then_converges(
    app, org, main_id, sync, db, clock, rt, tmp_path
):
    client = app.test_client()
    with radicale(tmp_path) as server:
        calendar = new_calendar(server)
        made = link(app, main_id, calendar)  # refuse when stale (the default)
        day = business_day(days=6)
        sync.sync_due()  # the first read: until then the link is stale
        first = book(app, org, f"{day}T09:00")
        sync.sync_due()
        assert client.get("/api/health").get_json()["calendars"] == "ok"

        server.stop()
        second = book(app, org, f"{day}T10:00")  # the booking path does not need the server
        fourth = book(app, org, f"{day}T13:00")
        # One attempt finds the server down and defers the link's other push with it.
        clock.advance(timedelta(minutes=2))  # polls are due too: they go first and fail
        assert sync.sync_due() == 2
        status = json.loads(cli(app, "calendar", "status", str(org.id)))
        assert status["waiting_pushes"] == 2
        assert "could not be reached" in status["last_error"]
        assert status["stale"] is False  # read 2 min ago: still within 15 minutes
        attempts = db.execute(
            "SELECT attempts, next_attempt_at FROM calendar_pushes WHERE status = 'pending' "
            "ORDER BY id"
        ).fetchall()
        assert [a for a, _ in attempts] == [1, 0]
        for _, due_at in attempts:
            assert abs(due_at - (clock() + timedelta(seconds=5))) < timedelta(seconds=2)
        clock.advance(timedelta(seconds=6))
        assert sync.sync_due() == 1  # one more attempt, the other push deferred again
        assert db.execute(
            "SELECT sum(attempts) FROM calendar_pushes WHERE status = 'pending'"
        ).fetchone() == (2,)

        # 16 minutes without a good read: stale. Refuse: the caller hears why, nothing booked.
        clock.advance(timedelta(minutes=16))
        sync.sync_due()
        backdate(db, made["id"], minutes=16)
        assert client.get("/api/health").get_json()["calendars"] == "stale"
        assert json.loads(cli(app, "calendar", "status", str(org.id)))["stale"] is True
        answer = error_of(post(client, org, envelope(tool_call(**booking(start=f"{day}T11:00")))))
        assert "can't confirm" in answer and "member of staff" in answer
        assert db.execute("SELECT count(*) FROM appointments").fetchone()[0] == 3
        # Nor is any time of that resource offered: the diary cannot be checked.
        check = envelope(tool_call("checkAvailability", date=day.isoformat()))
        assert "can't check the diary" in error_of(post(client, org, check))
        metrics = client.get("/metrics").get_data(as_text=True)
        assert f'booking_calendar_sync_age_seconds{{link_id="{made["id"]}",org_id="{org.id}"}}' in (
            metrics
        )
        assert "booking_calendars_stale 1.0" in metrics

        # Policy "book": booked, and marked unconfirmed for staff.
        db.execute("UPDATE calendar_links SET when_stale = 'book' WHERE id = %s", (made["id"],))
        third = book(app, org, f"{day}T11:00")
        assert db.execute(
            "SELECT unconfirmed FROM appointments WHERE reference = %s", (third,)
        ).fetchone() == (True,)
        listing = cli(app, "appointments", "list", str(org.id), "--date", day.isoformat())
        assert "booked (unconfirmed)" in listing

        # The server comes back: everything converges, nothing twice.
        server.start()
        clock.advance(timedelta(hours=1))
        sync.sync_due()
        assert sorted(events(calendar)) == sorted(
            calendar_uid(org.id, r) for r in (first, second, third, fourth)
        )
        assert pending(db, made["id"]) == 0
        assert client.get("/api/health").get_json()["calendars"] == "ok"
        status = json.loads(cli(app, "calendar", "status", str(org.id)))
        assert status["stale"] is False and status["last_error"] is None


def backdate(db, link_id: int, minutes: int) -> None:
    """The booking path judges staleness by the real clock; move the last good read back."""
    db.execute(
        "UPDATE calendar_links SET last_good_sync_at = now() - make_interval(mins => %s) "
        "WHERE id = %s",
        (minutes, link_id),
    )


def test_a_link_never_read_is_stale_not_free(app, org, main_id, dav, db):
    calendar = new_calendar(dav)
    link(app, main_id, calendar)
    answer = error_of(
        post(
            app.test_client(),
            org,
            envelope(tool_call(**booking(start=f"{business_day(days=3)}T10:00"))),
        )
    )
    assert "can't confirm" in answer
    assert db.execute("SELECT count(*) FROM appointments").fetchone()[0] == 0


def test_a_stale_resource_is_skipped_when_another_resource_can_take_the_time(
    app, org, main_id, dav, db, rt
):
    add_resource(rt.uow(), org.id, "Dr Chen", ["mon-fri 09:00-17:00"])
    link(app, main_id, new_calendar(dav))  # never read: stale, refuse
    day = business_day(days=3)
    body = envelope(tool_call(**booking(start=f"{day}T10:00")))
    result = booked(post(app.test_client(), org, body))
    assert result["appointment"]["resource"] == "Dr Chen"


# --- the feed and the listing -----------------------------------------------------------------


def test_the_ics_feed_has_the_bookings_with_their_uids_and_a_rotated_token_stops_the_old_url(
    app, org, main_id, rt, db
):
    other = add_resource(rt.uow(), org.id, "Dr Chen", ["mon-fri 09:00-17:00"])
    day = business_day(days=3)
    mine = book(app, org, f"{day}T10:00", resource="Main", name="Maria <b>Lopez</b>")
    theirs = book(app, org, f"{day}T10:00", resource="Dr Chen", phone="+14155550999")
    gone = book(app, org, f"{day}T12:00", resource="Main", phone="+14155550888")
    cancel = envelope(tool_call("cancelAppointment", reference=gone), customer="+14155550888")
    result_of(post(app.test_client(), org, cancel))

    made = json.loads(cli(app, "calendar", "feed", str(main_id)))
    assert made["rotated"] is False
    assert made["url"].startswith("https://book.example.com/ical/")
    path = made["url"].removeprefix("https://book.example.com")
    response = app.test_client().get(path)
    assert response.status_code == 200
    assert response.content_type == "text/calendar; charset=utf-8"
    assert "private" in response.headers["Cache-Control"]
    feed = icalendar.Calendar.from_ical(response.get_data())
    (event,) = feed.walk("VEVENT")  # Main's only: the cancelled one is not there
    assert str(event["UID"]) == calendar_uid(org.id, mine)
    assert event.decoded("DTSTART") == local(day, 10)
    assert str(event["SUMMARY"]) == "Maria <b>Lopez</b>: appointment"  # text, as given
    assert "5550123" not in response.get_data(as_text=True)
    assert "***0123" in str(event["DESCRIPTION"])

    # A second feed for the same resource needs --rotate; the old URL then answers 404.
    again = app.test_cli_runner().invoke(args=["calendar", "feed", str(main_id)])
    assert again.exit_code == 1 and "--rotate" in again.output
    rotated = json.loads(cli(app, "calendar", "feed", str(main_id), "--rotate"))
    assert rotated["rotated"] is True
    assert app.test_client().get(path).status_code == 404
    fresh = rotated["url"].removeprefix("https://book.example.com")
    assert app.test_client().get(fresh).status_code == 200
    # The token names its organization: under another organization's id it is nobody's.
    elsewhere = fresh.replace(f"/ical/{org.id}.", f"/ical/{org.id + 1}.")
    assert elsewhere != fresh and app.test_client().get(elsewhere).status_code == 404

    whole = json.loads(cli(app, "calendar", "feed", "--org", str(org.id)))
    everything = icalendar.Calendar.from_ical(
        app.test_client().get(whole["url"].removeprefix("https://book.example.com")).get_data()
    )
    assert sorted(str(e["UID"]) for e in everything.walk("VEVENT")) == sorted(
        calendar_uid(org.id, r) for r in (mine, theirs)
    )
    assert other.id != main_id
    for bad in ("/ical/nope.ics", "/ical/" + "A" * 43 + ".ics", "/ical/%00.ics"):
        assert app.test_client().get(bad).status_code == 404


def test_appointments_list_shows_the_day_in_local_time_with_masked_phones(app, org, rt):
    add_resource(rt.uow(), org.id, "Dr Chen", ["mon-fri 09:00-17:00"])
    day = business_day(days=3)
    first = book(app, org, f"{day}T10:00", resource="Main", service=None)
    book(app, org, f"{business_day(days=4)}T10:00", resource="Dr Chen")

    table = cli(app, "appointments", "list", str(org.id), "--date", day.isoformat())
    assert "Times in America/New_York" in table
    assert f"{local(day, 10):%a %Y-%m-%d} 10:00-10:30" in table
    assert first in table and "Maria Lopez" in table and "***0123" in table
    assert "5550123" not in table.replace("***0123", "")

    lines = cli(
        app, "appointments", "list", str(org.id), "--date", day.isoformat(), "--days", "2", "--json"
    ).splitlines()
    assert [json.loads(line)["resource"] for line in lines] == ["Main", "Dr Chen"]
    assert json.loads(lines[0])["starts_at"] == local(day, 10).isoformat()
    only = cli(
        app,
        "appointments",
        "list",
        str(org.id),
        "--date",
        day.isoformat(),
        "--days",
        "2",
        "--resource",
        "dr chen",
        "--json",
    ).splitlines()
    assert len(only) == 1
    missing = app.test_cli_runner().invoke(
        args=["appointments", "list", str(org.id), "--resource", "Nobody"]
    )
    assert missing.exit_code == 1 and "no resource named" in missing.output


# --- the link commands ------------------------------------------------------------------------


def test_link_commands_check_the_calendar_and_never_print_the_password(
    app, org, main_id, dav, database_url, db
):
    calendar = new_calendar(dav)
    url = str(calendar.url)
    wrong = cli(
        app,
        "calendar",
        "link",
        str(main_id),
        "--caldav-url",
        url,
        "--username",
        USER,
        "--password",
        "wrong",
        ok=False,
    )
    assert "refused the credentials" in wrong
    in_url = url.replace("http://", f"http://{USER}:{PASSWORD}@")
    assert "not in the URL" in cli(
        app, "calendar", "link", str(main_id), "--caldav-url", in_url, ok=False
    )
    missing = cli(
        app,
        "calendar",
        "link",
        str(main_id),
        "--caldav-url",
        url + "nope/",
        "--username",
        USER,
        "--password",
        PASSWORD,
        ok=False,
    )
    assert "cannot read that calendar" in missing
    assert "no resource" in cli(app, "calendar", "link", "999999", "--caldav-url", url, ok=False)
    # Without CALENDAR_ALLOW_PRIVATE_TARGETS a loopback calendar is refused (the service's own
    # network is not reachable through a link).
    strict = make_app(database_url)
    result = strict.test_cli_runner().invoke(
        args=["calendar", "link", str(main_id), "--caldav-url", url]
    )
    assert result.exit_code == 1 and "private or internal" in result.output
    strict.extensions[KEY].engine.dispose()
    assert db.execute("SELECT count(*) FROM calendar_links").fetchone()[0] == 0

    made = link(app, main_id, calendar, "--max-staleness-minutes", "30", "--when-stale", "book")
    assert PASSWORD not in json.dumps(made) and made["password_set"] is True
    stored = db.execute("SELECT password FROM calendar_links").fetchone()[0]
    assert stored.startswith("fernet:") and PASSWORD not in stored
    listed = [json.loads(line) for line in cli(app, "calendar", "list", str(org.id)).splitlines()]
    assert [(x["id"], x["when_stale"], x["max_staleness_minutes"]) for x in listed] == [
        (made["id"], "book", 30)
    ]
    assert PASSWORD not in cli(app, "calendar", "status", str(org.id))
    assert json.loads(cli(app, "calendar", "unlink", str(made["id"]))) == {
        "id": made["id"],
        "unlinked": True,
    }
    assert cli(app, "calendar", "list", str(org.id)) == ""
    assert "no calendar link" in cli(app, "calendar", "unlink", str(made["id"]), ok=False)


def test_a_calendar_url_that_redirects_is_refused(app, main_id, dav):
    """A redirect could lead past the address check to the service's own network."""
    target = str(new_calendar(dav).url)

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_PROPFIND(self):
            self.send_response(301)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_PUT = do_REPORT = do_OPTIONS = do_PROPFIND

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/owner/clinic/"
        out = cli(
            app,
            "calendar",
            "link",
            str(main_id),
            "--caldav-url",
            url,
            "--username",
            USER,
            "--password",
            PASSWORD,
            ok=False,
        )
        assert "redirect" in out
    finally:
        server.shutdown()
        server.server_close()


def test_two_workers_and_concurrent_moves_leave_every_event_at_its_final_time(
    app, org, main_id, dav, rt, db
):
    """A move committed while a push of the same appointment is in flight keeps its own push:
    the calendar ends at the final time, whatever order the workers ran in."""
    calendar = new_calendar(dav)
    made = link(app, main_id, calendar, "--no-block")
    day = business_day(days=8)
    references = [book(app, org, f"{day}T{9 + i:02d}:00") for i in range(4)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def work() -> None:
        worker = CalendarSync(rt.uow, rt.settings, jitter=lambda: 1.0)
        while not stop.is_set():
            try:
                worker.sync_due()
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)
                return

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    final: dict[str, datetime] = {}
    try:
        for minute in (15, 30, 45):
            for i, reference in enumerate(references):
                start = f"{day}T{9 + i:02d}:{minute}"
                move(app, org, reference, start, call_id=f"call-move-{reference}-{minute}")
                final[reference] = local(day, 9 + i, minute)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert errors == []
    CalendarSync(rt.uow, rt.settings).sync_due()  # whatever was committed after the last round
    assert pending(db, made["id"]) == 0
    stored = events(calendar)
    assert sorted(stored) == sorted(calendar_uid(org.id, r) for r in references)
    for reference, start in final.items():
        event = stored[calendar_uid(org.id, reference)]
        assert event.decoded("DTSTART") == start
        assert event["SEQUENCE"] == 3


def test_a_move_committed_while_its_push_is_in_flight_is_pushed_after_it(
    app, org, main_id, dav, sync, db, monkeypatch
):
    """The worker marks done only the pushes whose state it read: the move that commits while
    it talks to the server keeps its own push, and the calendar ends at the new time."""
    calendar = new_calendar(dav)
    made = link(app, main_id, calendar, "--no-block")
    day = business_day(days=4)
    reference = book(app, org, f"{day}T10:00")
    real_put = CalDavCalendar.put
    moved_once: list[str] = []

    def put_then_move(self, uid, document):
        real_put(self, uid, document)
        if not moved_once:  # the caller moves it while this push is still in flight
            moved_once.append(uid)
            move(app, org, reference, f"{day}T15:00")

    monkeypatch.setattr(CalDavCalendar, "put", put_then_move)
    sync.push_one()
    assert pending(db, made["id"]) == 1  # the move's own push is still waiting
    assert events(calendar)[calendar_uid(org.id, reference)].decoded("DTSTART") == local(day, 10)
    sync.sync_due()
    assert pending(db, made["id"]) == 0
    assert events(calendar)[calendar_uid(org.id, reference)].decoded("DTSTART") == local(day, 15)


def test_link_refuses_a_password_over_plain_http_and_a_url_with_a_query(app, main_id, database_url):
    strict = make_app(database_url)
    try:
        runner = strict.test_cli_runner()
        plain = runner.invoke(
            args=[
                "calendar",
                "link",
                str(main_id),
                "--caldav-url",
                "http://dav.example.com/c/",
                "--username",
                "u",
                "--password",
                "p",
            ]
        )
        assert plain.exit_code == 1 and "only sent over https" in plain.output
        query = runner.invoke(
            args=[
                "calendar",
                "link",
                str(main_id),
                "--caldav-url",
                "https://dav.example.com/c/?x=1",
            ]
        )
        assert query.exit_code == 1 and "without ?query" in query.output
    finally:
        strict.extensions[KEY].engine.dispose()


def test_one_calendar_takes_pushes_from_one_link_and_done_pushes_are_forgotten(
    app, org, main_id, dav, rt, sync, db
):
    other = add_resource(rt.uow(), org.id, "Dr Chen", ["mon-fri 09:00-17:00"])
    calendar = new_calendar(dav)
    made = link(app, main_id, calendar, "--no-block")
    twice = cli(app, "calendar", "link", str(other.id), "--caldav-url", str(calendar.url), ok=False)
    assert "already pushes into that calendar" in twice
    assert link(app, other.id, calendar, "--no-push")["push"] is False  # reading it is fine

    book(app, org, f"{business_day(days=3)}T10:00", resource="Main")
    sync.sync_due()
    db.execute("UPDATE calendar_pushes SET done_at = now() - interval '8 days'")
    book(app, org, f"{business_day(days=3)}T11:00", resource="Main")
    CalendarSync(rt.uow, rt.settings).sync_due()  # a new worker forgets on its first round
    assert db.execute(
        "SELECT count(*) FROM calendar_pushes WHERE link_id = %s", (made["id"],)
    ).fetchone() == (1,)


def test_an_event_in_one_resources_calendar_leaves_the_other_resource_offered_and_bookable(
    app, org, main_id, dav, sync, rt, db
):
    """Busy time belongs to its resource: an event in Main's calendar keeps Main out of that
    hour, not Dr Chen, whether the caller names a resource or takes anyone free."""
    add_resource(rt.uow(), org.id, "Dr Chen", ["mon-fri 09:00-17:00"])
    calendar = new_calendar(dav)
    link(app, main_id, calendar, "--no-push")
    day = business_day(days=5)
    start = local(day, 10).astimezone(UTC)
    add_event(
        calendar,
        "staff-meeting",
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}",
        f"DTEND:{start + timedelta(hours=1):%Y%m%dT%H%M%SZ}",
    )
    assert sync.sync_due() == 1
    client = app.test_client()

    def offered(**choice: str) -> dict[str, set[str]]:
        """Local time -> the resources offered then, between 09:30 and 11:30."""
        call = tool_call(
            "checkAvailability", **{"from": f"{day}T09:30", "to": f"{day}T11:30"}, **choice
        )
        slots = result_of(post(client, org, envelope(call, customer=CALLER)))["slots"]
        found: dict[str, set[str]] = {}
        for slot in slots:
            found.setdefault(slot["start"][11:16], set()).add(slot["resource"])
        return found

    overlapping = {"09:45", "10:00", "10:15", "10:30", "10:45"}  # 30-minute appointments
    main = offered(resource="Main")
    assert "09:30" in main and "11:00" in main  # Main is offered around the meeting
    assert not overlapping & set(main)
    assert overlapping <= set(offered(resource="Dr Chen"))
    anyone = offered()
    assert all(anyone.get(t) == {"Dr Chen"} for t in overlapping), anyone

    refused = error_of(
        post(
            client,
            org,
            envelope(tool_call(**booking(start=f"{day}T10:00", resource="Main")), customer=CALLER),
        )
    )
    assert "is already taken" in refused  # Main, named, is busy then
    named = book(app, org, f"{day}T10:00", resource="Dr Chen")
    anyone_free = booked(
        post(
            client,
            org,
            envelope(tool_call(**booking(start=f"{day}T10:30")), customer="+14155550124"),
        )
    )
    assert anyone_free["appointment"]["resource"] == "Dr Chen"
    assert db.execute(
        "SELECT a.reference, r.name FROM appointments a JOIN resources r ON r.id = a.resource_id "
        "ORDER BY a.starts_at"
    ).fetchall() == [(named, "Dr Chen"), (anyone_free["appointment"]["reference"], "Dr Chen")]
