"""A real CalDAV server for tests: Radicale (from PyPI) on a free loopback port, with its own
storage folder and one user (htpasswd, plain), started as a subprocess so a test can stop it
(an outage) and start it again on the same port and storage (it comes back)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from caldav.davclient import DAVClient

from booking_service.devtools.pgcluster import free_port

USER = "owner"
PASSWORD = "radicale-test-password"


class Radicale:
    """One Radicale process; `stop()` and `start()` keep the port and the stored calendars."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/"
        self._process: subprocess.Popen | None = None
        users = folder / "users"
        users.write_text(f"{USER}:{PASSWORD}\n")
        self._args = [
            sys.executable,
            "-m",
            "radicale",
            "--server-hosts",
            f"127.0.0.1:{self.port}",
            "--storage-filesystem-folder",
            str(folder / "collections"),
            "--auth-type",
            "htpasswd",
            "--auth-htpasswd-filename",
            str(users),
            "--auth-htpasswd-encryption",
            "plain",
            "--rights-type",
            "owner_only",
            # No 1 s pause after each 401 (brute-force protection): caldav asks anonymously
            # first on every new session.
            "--auth-delay",
            "0",
            "--logging-level",
            "warning",
        ]

    def start(self) -> None:
        log = self.folder / "radicale.log"
        with log.open("ab") as sink:
            self._process = subprocess.Popen(self._args, stdout=sink, stderr=sink)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError("radicale exited: " + log.read_text()[-2000:])
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("radicale did not start listening within 20 s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def client(self) -> DAVClient:
        return DAVClient(url=self.base_url, username=USER, password=PASSWORD, timeout=10)

    def make_calendar(self, name: str):
        """A new calendar collection of the user; returns the caldav Calendar (its .url is
        what `calendar link --caldav-url` takes)."""
        return self.client().principal().make_calendar(name=name, cal_id=name)


@contextmanager
def radicale(folder: Path) -> Iterator[Radicale]:
    server = Radicale(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
