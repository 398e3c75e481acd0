"""A small HTTP server speaking Twilio's Messages API, on 127.0.0.1, for the real `twilio`
client (pointed at it with TWILIO_API_BASE_URL).

- POST /2010-04-01/Accounts/{Sid}/Messages.json (form: To, Body, From or MessagingServiceSid),
  HTTP Basic auth with the account SID and auth token: 201 with the message (a fresh `SM...`
  sid); 401 for a wrong token; 400 with Twilio's error 21610 for a number in `unsubscribed`.
- GET the same path (?To=...): the messages to that number, newest first, in Twilio's page
  shape, which the client pages through.
`after_store` runs after a message is stored and before the answer is written (a test kills the
worker there: the provider has the message, the worker never heard back).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_PATH = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-f]{32})/Messages\.json$")


@dataclass
class FakeTwilio:
    """The server's state."""

    account_sid: str
    auth_token: str
    messages: list[dict] = field(default_factory=list)
    unsubscribed: set[str] = field(default_factory=set)
    after_store: Callable[[dict], None] | None = None
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sent_to(self, number: str) -> list[str]:
        with self._lock:
            return [m["body"] for m in self.messages if m["to"] == number]


def _handler(state: FakeTwilio) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def _json(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _authorized(self) -> bool:
            expected = base64.b64encode(f"{state.account_sid}:{state.auth_token}".encode()).decode()
            return self.headers.get("Authorization", "") == f"Basic {expected}"

        def _route(self) -> bool:
            match = _PATH.match(urlsplit(self.path).path)
            if not match or match.group(1) != state.account_sid:
                self._json(404, {"code": 20404, "message": "not found", "status": 404})
                return False
            if not self._authorized():
                self._json(401, {"code": 20003, "message": "Authenticate", "status": 401})
                return False
            return True

        def do_POST(self) -> None:
            if not self._route():
                return
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            to = form.get("To", "")
            if to in state.unsubscribed:
                self._json(
                    400,
                    {
                        "code": 21610,
                        "message": "Attempt to send to unsubscribed recipient",
                        "more_info": "https://www.twilio.com/docs/errors/21610",
                        "status": 400,
                    },
                )
                return
            now = datetime.now(UTC)
            message = {
                "sid": f"SM{uuid.uuid4().hex}",
                "account_sid": state.account_sid,
                "to": to,
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "body": form.get("Body", ""),
                "status": "queued",
                "date_created": format_datetime(now),
                "date_updated": format_datetime(now),
                "date_sent": None,
                "direction": "outbound-api",
                "num_segments": "1",
                "uri": f"/2010-04-01/Accounts/{state.account_sid}/Messages/x.json",
            }
            with state._lock:
                state.messages.append(message)
            if state.after_store is not None:
                state.after_store(message)
            self._json(201, message)

        def do_GET(self) -> None:
            if not self._route():
                return
            query = parse_qs(urlsplit(self.path).query)
            to = query.get("To", [None])[0]
            with state._lock:
                found = [m for m in reversed(state.messages) if to is None or m["to"] == to]
            self._json(
                200,
                {
                    "messages": found,
                    "next_page_uri": None,
                    "previous_page_uri": None,
                    "first_page_uri": self.path,
                    "uri": self.path,
                    "page": 0,
                    "page_size": 50,
                    "start": 0,
                    "end": len(found),
                },
            )

    return Handler


@contextlib.contextmanager
def fake_twilio(account_sid: str, auth_token: str) -> Iterator[FakeTwilio]:
    """Run the server on a free loopback port for the duration of the block."""
    state = FakeTwilio(account_sid, auth_token)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
