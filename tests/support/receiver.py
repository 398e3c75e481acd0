"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that verifies every delivery
with the `standardwebhooks` package's own `Webhook.verify`, as a customer's receiver would.

It answers from a script of responses (status, headers, delay), can hold a request until the
test releases it (to kill a worker mid-POST), and records every request it saw.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    webhook_id: str
    signature: str
    body: bytes
    verified_with: list[str]  # which of the receiver's secrets verified it
    payload: dict | None


@dataclass
class Reply:
    """What to answer one request with."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    body: bytes = b"ok"
    drip_s: float = 0.0  # send the body one byte at a time, this far apart


@dataclass
class Receiver:
    """The server's state; `secrets` are the ones a receiver would verify with."""

    secrets: list[str]
    script: list[Reply] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    hold: threading.Event | None = None  # set: answer; unset: wait (a request in flight)
    arrived: threading.Event = field(default_factory=threading.Event)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def ids(self) -> list[str]:
        with self._lock:
            return [r.webhook_id for r in self.received]

    def verified(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.verified_with]

    def _next_reply(self) -> Reply:
        with self._lock:
            return self.script.pop(0) if self.script else Reply()

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        verified, payload = [], None
        for secret in self.secrets:
            try:
                payload = Webhook(secret).verify(body, headers)
                verified.append(secret)
            except WebhookVerificationError:
                pass
        with self._lock:
            self.received.append(
                Received(
                    path,
                    headers.get("webhook-id", ""),
                    headers.get("webhook-signature", ""),
                    body,
                    verified,
                    payload,
                )
            )
        self.arrived.set()
        if self.hold is not None:
            self.hold.wait(timeout=60)
        return self._next_reply()


def _handler(state: Receiver):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("content-length", 0))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = state.handle(self.path, headers, body)
            if reply.delay_s:
                time.sleep(reply.delay_s)
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                if not reply.drip_s:
                    self.wfile.write(reply.body)
                for byte in reply.body if reply.drip_s else b"":
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(reply.drip_s)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the worker gave up (timeout) or died

        def log_message(self, *args):  # quiet
            pass

    return Handler


@contextlib.contextmanager
def receiver(secrets: list[str] | None = None) -> Iterator[Receiver]:
    """Serve a Receiver on a free loopback port for the duration of the block."""
    state = Receiver(secrets=list(secrets or []))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        if state.hold is not None:
            state.hold.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def payload_of(received: Received) -> dict:
    return json.loads(received.body)
