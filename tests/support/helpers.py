"""Helpers for building VAPI requests and reading answers in tests."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
from flask.testing import FlaskClient
from sqlalchemy import event

from booking_service.domain.times import utc_now
from booking_service.runtime.extensions import KEY


def statements_sent(app) -> list[str]:
    """Every SQL statement the app's engine sends from now on, whitespace folded (appended
    as they go)."""
    seen: list[str] = []

    @event.listens_for(app.extensions[KEY].engine, "before_cursor_execute")
    def _record(_conn, _cursor, sql, *_args):
        seen.append(" ".join(sql.split()))

    return seen


def business_day(zone: ZoneInfo | str = "America/New_York", days: int = 7):
    """The `days`-th Monday-to-Friday date after today (distinct days give distinct dates)."""
    zone = ZoneInfo(zone) if isinstance(zone, str) else zone
    day = datetime.now(zone).date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if day.weekday() < 5:
            counted += 1
    return day


def local_start(
    zone: ZoneInfo | str = "America/New_York", days: int = 7, hour: int = 10, minute: int = 0
) -> str:
    """A naive local ISO start on the `days`-th business day from now (default opening hours)."""
    day = business_day(zone, days)
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}"


def tool_call(tool: str = "bookAppointment", call_id: str | None = None, **arguments) -> dict:
    return {
        "id": call_id or f"call_{uuid.uuid4().hex[:20]}",
        "type": "function",
        "function": {"name": tool, "arguments": arguments},
    }


def envelope(*calls: dict, customer: str | None = "+14155550123", call_id: str = "call-1") -> dict:
    message: dict = {"type": "tool-calls", "call": {"id": call_id}, "toolCallList": list(calls)}
    if customer:
        message["customer"] = {"number": customer}
    return {"message": message}


def booking(**overrides) -> dict:
    """Arguments of a valid booking a week from now."""
    args = {"name": "Maria Lopez", "start": local_start()}
    args.update(overrides)
    return {k: v for k, v in args.items() if v is not None}


def post(client: FlaskClient, org, body, headers: dict | None = None):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(
        "/api/vapi/tools",
        data=data,
        headers={"Content-Type": "application/json", **org.headers, **(headers or {})},
    )


def only_result(response) -> dict:
    """The single result entry of a webhook response (asserting HTTP 200)."""
    assert response.status_code == 200, response.get_data(as_text=True)
    results = response.get_json()["results"]
    assert len(results) == 1
    return results[0]


def booked(response) -> dict:
    """The decoded `result` of a successful single booking."""
    entry = only_result(response)
    assert "result" in entry, entry
    result = json.loads(entry["result"])
    assert result["status"] == "booked"
    return result


def result_of(response) -> dict:
    """The decoded `result` of a single successful tool call."""
    entry = only_result(response)
    assert "result" in entry, entry
    return json.loads(entry["result"])


def error_of(response) -> str:
    entry = only_result(response)
    assert "error" in entry and "result" not in entry, entry
    assert "\n" not in entry["error"]
    return entry["error"]


def count(conn: psycopg.Connection, sql: str, *params) -> int:
    return conn.execute(sql, params).fetchone()[0]


def run_concurrently(n: int, work) -> list:
    """Run work(i) in n threads released together by a barrier; return results or exceptions."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def runner(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:  # collected and asserted by the test
            results[i] = exc

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "threads did not finish"
    return results


def transitions(zone: ZoneInfo) -> tuple[date, date]:
    """The next spring-forward and fall-back dates after today (found, not hard-coded)."""
    day = datetime.now(zone).date() + timedelta(days=1)
    spring = fall = None
    while spring is None or fall is None:
        before = datetime.combine(day, datetime.min.time(), zone).utcoffset()
        after = datetime.combine(day + timedelta(days=1), datetime.min.time(), zone).utcoffset()
        if after > before and spring is None:
            spring = day
        if after < before and fall is None:
            fall = day
        day += timedelta(days=1)
    return spring, fall


def cli(app, *args: str, input: str | None = None, ok: bool = True) -> str:
    """Run a `flask` command in-process, asserting exit code 0 (or 1 with ok=False); what it
    printed: on success its standard output alone (the JSON it answers), on failure everything
    (the error line goes to standard error). Click's combined output would also hold any log
    line another thread wrote to standard error meanwhile, and break the JSON."""
    result = app.test_cli_runner().invoke(args=list(args), input=input)
    if ok:
        assert result.exit_code == 0, result.output
        return result.stdout
    assert result.exit_code == 1, result.output
    return result.output


class Clock:
    """A worker's clock: the real time moved by `offset` (what is due is written with the real
    now() of the transaction, so retries or pushes hours apart run at once)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utc_now() + self.offset

    @property
    def now(self) -> datetime:
        return self()

    def advance(self, delta: timedelta) -> None:
        self.offset += delta
