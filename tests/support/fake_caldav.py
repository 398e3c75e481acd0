"""A CalDAV server that misbehaves on purpose, on a free loopback port, for the calendar
isolation tests: it answers PROPFIND as a calendar collection, PUT and DELETE as stored, and
REPORT with whatever the test set: a multistatus of events, a slow answer, an answer that
trickles a byte a second and never ends, one that lists an event without sending it, or one far
larger than any diary. Radicale (tests/support/radicale_server.py) is the well-behaved server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

PROPFIND_ANSWER = b"""<?xml version="1.0" encoding="utf-8"?>
<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">
<d:response><d:href>/cal/</d:href><d:propstat><d:prop>
<d:resourcetype><d:collection/><c:calendar/></d:resourcetype>
</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
</d:multistatus>"""


def multistatus(*events: str, missing: tuple[str, ...] = ()) -> bytes:
    """A calendar-query answer with these iCalendar objects, and `missing` hrefs listed with a
    404 instead of their data."""
    parts = ['<?xml version="1.0" encoding="utf-8"?>']
    parts.append('<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">')
    for n, body in enumerate(events):
        parts.append(
            f"<d:response><d:href>/cal/e{n}.ics</d:href><d:propstat><d:prop>"
            f'<d:getetag>"{n}"</d:getetag><c:calendar-data>{escape(body)}</c:calendar-data>'
            "</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
        )
    for href in missing:
        parts.append(
            f"<d:response><d:href>{href}</d:href><d:propstat><d:prop><c:calendar-data/></d:prop>"
            "<d:status>HTTP/1.1 404 Not Found</d:status></d:propstat></d:response>"
        )
    parts.append("</d:multistatus>")
    return "".join(parts).encode()


def vcalendar(*lines: str) -> str:
    """One VEVENT in a VCALENDAR, CRLF-separated."""
    return "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//hostile//EN",
            "BEGIN:VEVENT",
            "DTSTAMP:20261130T120000Z",
            *lines,
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )


@dataclass
class Behaviour:
    """What REPORT answers; changed by the test between polls."""

    report: bytes = field(default_factory=multistatus)
    delay_s: float = 0.0  # before any byte of the answer
    trickle: bool = False  # headers, then one byte a second, for ever
    reports: int = 0  # REPORTs received
    hosts: list[str] = field(default_factory=list)  # the Host headers seen


class FakeCalDav:
    """The server; `url` is its calendar collection."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        behaviour = self.behaviour
        stop = threading.Event()
        self._stop = stop

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _answer(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("content-type", "application/xml; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("content-length") or 0))

            def do_PROPFIND(self) -> None:
                self._body()
                self._answer(207, PROPFIND_ANSWER)

            def do_PUT(self) -> None:
                self._body()
                self._answer(201)

            def do_DELETE(self) -> None:
                self._answer(204)

            def do_REPORT(self) -> None:
                self._body()
                behaviour.reports += 1
                behaviour.hosts.append(self.headers.get("host", ""))
                if behaviour.delay_s:
                    time.sleep(behaviour.delay_s)
                if behaviour.trickle:
                    self.send_response(207)
                    self.send_header("content-type", "application/xml")
                    self.send_header("content-length", str(10**9))
                    self.end_headers()
                    try:
                        while not stop.is_set():
                            self.wfile.write(b" ")
                            self.wfile.flush()
                            time.sleep(0.5)
                    except OSError:
                        pass  # the reader went away, as it should
                    return
                self._answer(207, behaviour.report)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/cal/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def fake_caldav() -> Iterator[FakeCalDav]:
    """A running FakeCalDav, stopped after."""
    server = FakeCalDav()
    server.start()
    try:
        yield server
    finally:
        server.stop()
