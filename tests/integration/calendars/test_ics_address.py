"""A calendar's secret iCal address as a busy source (`calendar link --ics-url`): read in the
killable child, conditional GET (ETag → 304 keeps the busy times), recurrences expanded, the
address sealed and shown masked, loopback refused unless CALENDAR_ALLOW_PRIVATE_TARGETS."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest

from booking_service.runtime.extensions import KEY
from tests.support.app import make_app
from tests.support.calendars import CALLER
from tests.support.helpers import business_day, cli, envelope, error_of, post, tool_call

NY = ZoneInfo("America/New_York")


class Feed:
    """A published calendar: one document, an ETag, 304 to a matching If-None-Match."""

    def __init__(self) -> None:
        self.document = b""
        self.etag = '"v1"'
        self.requests: list[dict] = []
        feed = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                feed.requests.append({"path": self.path, **dict(self.headers)})
                if not self.path.startswith("/private-abc123/basic.ics?key=s3cret"):
                    self.send_response(404)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                if self.headers.get("if-none-match") == feed.etag:
                    self.send_response(304)
                    self.send_header("etag", feed.etag)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("content-type", "text/calendar")
                self.send_header("etag", feed.etag)
                self.send_header("content-length", str(len(feed.document)))
                self.end_headers()
                self.wfile.write(feed.document)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = (
            f"http://127.0.0.1:{self.server.server_address[1]}/private-abc123/basic.ics?key=s3cret"
        )
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def feed():
    served = Feed()
    yield served
    served.server.shutdown()
    served.server.server_close()


@pytest.fixture
def app(database_url, feed):
    application = make_app(database_url, CALENDAR_ALLOW_PRIVATE_TARGETS=True, CALENDAR_TIMEOUT_S=5)
    yield application
    application.extensions[KEY].engine.dispose()


def vcalendar(*events: list[str]) -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//owner//EN"]
    for n, event in enumerate(events):
        lines += [
            "BEGIN:VEVENT",
            f"UID:e{n}@owner",
            "DTSTAMP:20261130T120000Z",
            *event,
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode()


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def local(day, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=NY)


def busy_rows(db, link_id: int):
    return [
        (a.astimezone(UTC), b.astimezone(UTC))
        for a, b in db.execute(
            "SELECT starts_at, ends_at FROM calendar_busy WHERE link_id = %s ORDER BY starts_at",
            (link_id,),
        )
    ]


def test_an_ical_address_blocks_its_events_and_an_unchanged_one_is_not_downloaded_again(
    app, org, main_id, feed, sync, clock, db
):
    day = business_day(days=4)
    later = day + timedelta(days=7)
    feed.document = vcalendar(
        [f"DTSTART:{stamp(local(day, 9))}", f"DTEND:{stamp(local(day, 10))}"],
        [
            f"DTSTART:{stamp(local(day, 11))}",
            f"DTEND:{stamp(local(day, 12))}",
            "TRANSP:TRANSPARENT",
        ],
        # Weekly at 15:00, the second occurrence excluded.
        [
            f"DTSTART;TZID=America/New_York:{local(day, 15):%Y%m%dT%H%M%S}",
            f"DTEND;TZID=America/New_York:{local(day, 16):%Y%m%dT%H%M%S}",
            "RRULE:FREQ=WEEKLY;COUNT=3",
            f"EXDATE;TZID=America/New_York:{local(later, 15):%Y%m%dT%H%M%S}",
        ],
    )
    out = cli(app, "calendar", "link", str(main_id), "--ics-url", "-", input=feed.url + "\n")
    link = json.loads(out)
    assert link["provider"] == "ics" and link["push"] is False
    assert "s3cret" not in out and "abc123" not in out
    assert link["url"] == "http://127.0.0.1/…"
    assert "s3cret" not in db.execute("SELECT password FROM calendar_links").fetchone()[0]

    assert sync.poll_one()
    third = day + timedelta(days=14)
    assert busy_rows(db, link["id"]) == [
        (local(day, 9).astimezone(UTC), local(day, 10).astimezone(UTC)),
        (local(day, 15).astimezone(UTC), local(day, 16).astimezone(UTC)),
        (local(third, 15).astimezone(UTC), local(third, 16).astimezone(UTC)),
    ]
    refused = error_of(
        post(
            app.test_client(),
            org,
            envelope(tool_call("bookAppointment", start=f"{day}T09:00", name="A", phone=CALLER)),
        )
    )
    assert "10:00" in refused

    # Unchanged: the next read asks with If-None-Match, gets 304, keeps the busy times and
    # counts as a good read.
    clock.advance(timedelta(minutes=2))
    assert sync.poll_one()
    assert feed.requests[-1].get("if-none-match") == '"v1"'
    assert len(busy_rows(db, link["id"])) == 3
    status = json.loads(cli(app, "calendar", "status", str(org.id)))
    assert status["state"] == "ok" and status["last_error"] is None

    # Changed: the owner removed the 9:00 event.
    feed.document = vcalendar(
        [f"DTSTART:{stamp(local(day, 13))}", f"DTEND:{stamp(local(day, 14))}"]
    )
    feed.etag = '"v2"'
    clock.advance(timedelta(minutes=2))
    assert sync.poll_one()
    assert busy_rows(db, link["id"]) == [
        (local(day, 13).astimezone(UTC), local(day, 14).astimezone(UTC))
    ]


def test_an_ical_address_on_a_private_network_or_unreadable_is_refused(
    database_url, main_id, feed, app, db
):
    strict = make_app(database_url)
    try:
        out = cli(strict, "calendar", "link", str(main_id), "--ics-url", feed.url, ok=False)
        assert "s3cret" not in out
        assert "address" in out or "private" in out or "loopback" in out
    finally:
        strict.extensions[KEY].engine.dispose()
    wrong = feed.url.replace("abc123", "reset")
    out = cli(app, "calendar", "link", str(main_id), "--ics-url", wrong, ok=False)
    assert "404" in out
    out = cli(app, "calendar", "link", str(main_id), "--ics-url", feed.url, "--no-block", ok=False)
    assert "only blocks" in out
    assert db.execute("SELECT count(*) FROM calendar_links").fetchone()[0] == 0


def test_an_ical_address_larger_than_the_limit_is_a_failed_read_not_an_empty_one(
    app, org, main_id, feed, sync, clock, db
):
    day = business_day(days=4)
    feed.document = vcalendar([f"DTSTART:{stamp(local(day, 9))}", f"DTEND:{stamp(local(day, 10))}"])
    feed.etag = '"small"'
    link = json.loads(cli(app, "calendar", "link", str(main_id), "--ics-url", feed.url))
    assert sync.poll_one()
    assert len(busy_rows(db, link["id"])) == 1
    feed.document = feed.document.replace(
        b"END:VCALENDAR", b"X-PAD:" + b"x" * (6 * 1024 * 1024) + b"\r\nEND:VCALENDAR"
    )
    feed.etag = '"huge"'
    clock.advance(timedelta(minutes=2))
    assert sync.poll_one()
    status = json.loads(cli(app, "calendar", "status", str(org.id)))
    assert "more than 5 MB" in status["last_error"]
    assert len(busy_rows(db, link["id"])) == 1  # the last good read's busy times stay
