"""A calendar read (a CalDAV collection, an iCal address) in a process of its own, which can be
killed.

Reading an owner's calendar means parsing what a stranger's server sends and expanding the
recurrences in it: the one place where a tenant's data costs us CPU and memory we do not
control. A thread cannot be stopped (the old 30 s deadline only stopped *waiting* for it, and the
next poll started another), so each read runs in a short-lived child process:
- the parent waits at most `deadline_s` in all, then kills it (SIGKILL): nothing keeps running;
- the child caps its own address space and CPU time (RLIMIT_AS, RLIMIT_CPU) before it reads a
  byte, so even within the deadline it cannot take the machine's memory;
- it gets the request (the password too) on stdin, never in argv or its environment, and an
  environment without the service's secrets;
- it answers one JSON line: the merged busy ranges, or why the read failed.
Starting it costs about 0.1 s of CPU, once per poll of a link (CALENDAR_POLL_SECONDS).

`python -m booking_service.adapters.calendar_process` is the child's side.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from booking_service.domain.recurrence import UnreadableCalendar
from booking_service.ports.calendars import (
    Busy,
    BusyQuery,
    BusyRead,
    CalendarAccess,
    CalendarFailure,
)

# A child may use this much address space (Python, httpx and icalendar need about 100 MB;
# the rest is for the answer and the expanded events, bounded by recurrence.MAX_OCCURRENCES).
MEMORY_BYTES = 512 * 1024 * 1024
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
# What the child may see of the environment: enough to find Python and TLS roots.
_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR", "TZ", "PYTHONHASHSEED")


class CalendarReadFailed(CalendarFailure):
    """The read did not produce busy times; the message says why, fit for `calendar status`."""


def read_busy(
    access: CalendarAccess,
    query: BusyQuery,
    *,
    deadline_s: float,
    memory_bytes: int = MEMORY_BYTES,
) -> Busy:
    """The CalDAV calendar's busy ranges, read in a child process that is killed after
    `deadline_s`. Raises CalendarReadFailed."""
    answer = _run_child("caldav", access, query, deadline_s, memory_bytes)
    return _ranges(answer["ranges"])


def read_feed(
    access: CalendarAccess,
    query: BusyQuery,
    *,
    deadline_s: float,
    memory_bytes: int = MEMORY_BYTES,
) -> BusyRead:
    """An iCal address's busy ranges (None: unchanged since `access.state`), downloaded and
    expanded in a child process that is killed after `deadline_s` (adapters/ics_feed.py).
    Raises CalendarReadFailed."""
    answer = _run_child("ics", access, query, deadline_s, memory_bytes)
    ranges = None if answer["ranges"] is None else _ranges(answer["ranges"])
    return BusyRead(ranges, answer.get("state"))


def _ranges(pairs: list) -> Busy:
    return [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in pairs]


def _run_child(
    kind: str, access: CalendarAccess, query: BusyQuery, deadline_s: float, memory_bytes: int
) -> dict:
    env = {name: os.environ[name] for name in _PASSED_ENV if name in os.environ}
    env["PYTHONPATH"] = _PACKAGE_ROOT
    # The password goes with the rest on stdin: never in argv or the child's environment.
    payload = {
        **asdict(access),
        **asdict(query),
        "kind": kind,
        "start": query.start.isoformat(),
        "end": query.end.isoformat(),
        "deadline_s": deadline_s,
        "memory_bytes": memory_bytes,
        # CPU seconds: the deadline is wall time, so CPU can never usefully exceed it.
        "cpu_s": max(1, int(deadline_s) + 1),
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "booking_service.adapters.calendar_process"],
            input=json.dumps(payload).encode(),
            capture_output=True,
            timeout=deadline_s,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        # subprocess.run has killed and reaped the child.
        raise CalendarReadFailed(
            f"the calendar server did not finish within {deadline_s:.0f} s"
        ) from None
    if done.returncode != 0:
        raise CalendarReadFailed(_death(done.returncode, done.stderr))
    try:
        answer = json.loads(done.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise CalendarReadFailed("the calendar read ended without an answer") from None
    if not answer.get("ok"):
        raise CalendarReadFailed(str(answer.get("reason", "the calendar could not be read")))
    return answer


_OUT_OF_MEMORY = "reading the calendar was stopped: it needed more memory than a read may use"


def _death(code: int, stderr: bytes) -> str:
    if code == -24:  # SIGXCPU
        return "reading the calendar took more than its CPU time (an event repeats too often?)"
    # Out of address space where no handler could answer (while importing, or answering).
    if code in (-9, -6, 137) or b"MemoryError" in stderr or b"Cannot allocate memory" in stderr:
        return _OUT_OF_MEMORY
    return f"the calendar read failed (exit {code})"


# --- the child ----------------------------------------------------------------------------------


def _limit(memory_bytes: int, cpu_s: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))


def _read(payload: dict) -> tuple[list[tuple[datetime, datetime]] | None, str | None]:
    """(ranges or None when unchanged, the state to keep)."""
    # Imported after the limits are set: nothing the calendar sends is parsed before.
    if payload.get("kind") == "ics":
        from booking_service.adapters.ics_download import read_in_child

        return read_in_child(payload)
    from booking_service.adapters.caldav import CalDavCalendar
    from booking_service.domain.calendar_events import busy_ranges

    start, end = datetime.fromisoformat(payload["start"]), datetime.fromisoformat(payload["end"])
    with CalDavCalendar(
        payload["url"],
        payload["username"],
        payload["password"],
        timeout_s=payload["timeout_s"],
        allow_private=payload["allow_private"],
        deadline_s=payload["deadline_s"],
    ) as calendar:
        found = calendar.events_between(start, end)
    zone = ZoneInfo(payload["timezone"])
    return busy_ranges(found, zone, start, end, own_suffix=payload["own_suffix"]), None


def main() -> int:
    """The child: one request on stdin, one JSON answer on stdout."""
    payload = json.loads(sys.stdin.buffer.read())
    _limit(payload["memory_bytes"], payload["cpu_s"])
    from booking_service.adapters.caldav import CalendarUnreachable

    try:
        ranges, state = _read(payload)
    except (CalendarUnreachable, UnreadableCalendar) as exc:
        answer: dict = {"ok": False, "reason": str(exc)}
    except MemoryError:
        answer = {"ok": False, "reason": _OUT_OF_MEMORY}
    except Exception as exc:
        answer = {"ok": False, "reason": f"the calendar could not be read ({type(exc).__name__})"}
    else:
        answer = {
            "ok": True,
            "ranges": None
            if ranges is None
            else [[a.isoformat(), b.isoformat()] for a, b in ranges],
            "state": state,
        }
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
