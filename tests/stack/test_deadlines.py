"""Deadlines count from arrival, and one organization cannot starve another: through the real
stack (nginx → gunicorn → PostgreSQL).

Every worker thread is held busy by bookings waiting on a table lock. A booking that arrives
meanwhile waits in gunicorn's queue; nginx passes its arrival time (X-Request-Start), so when a
thread finally takes it, its budget is already spent and it is answered "please ask again"
without being run. The bookings that held the threads ran past the commit limit and are rolled
back: nothing is kept that nginx (or VAPI) may already have given up on.

Times are shortened for the test (budget 2 s, commit limit 3 s, nginx's proxy_read_timeout 6 s
instead of 12/17/19 s); the relations between them are the production ones.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from booking_service.runtime.extensions import KEY
from booking_service.use_cases.orgs import create_org
from tests.support import stack
from tests.support.app import make_app
from tests.support.helpers import local_start
from tests.support.stack import GUNICORN_THREADS, Stack

TOOLS = "/api/vapi/tools"
# One worker: "every thread is busy" is then something the test can see and rely on (with two,
# nginx's kept-alive connections may queue requests at one worker while the other has a free
# thread).
WORKERS = 1
THREADS = WORKERS * GUNICORN_THREADS
# deploy/gunicorn.conf.py: an organization may use all but one thread of a worker at once.
SHARE = GUNICORN_THREADS - 1
BUDGET_S, COMMIT_LIMIT_S, NGINX_READ_TIMEOUT_S = 2, 3, 6


@pytest.fixture(scope="module")
def live(nginx_binary: Path, module_database: str) -> Iterator[Stack]:
    started = Stack(
        nginx_binary,
        module_database,
        extra_env={
            "GUNICORN_WORKERS": str(WORKERS),
            "REQUEST_BUDGET_S": str(BUDGET_S),
            "REQUEST_COMMIT_LIMIT_S": str(COMMIT_LIMIT_S),
            # Held bookings wait for the test's lock, not for a lock timeout.
            "DB_LOCK_TIMEOUT_MS": "30000",
            "DB_STATEMENT_TIMEOUT_MS": "30000",
        },
        site_changes={"proxy_read_timeout 19s;": f"proxy_read_timeout {NGINX_READ_TIMEOUT_S}s;"},
    ).start()
    try:
        yield started
    finally:
        started.stop()


def _new_org(live: Stack, name: str) -> dict:
    created = live.flask("org", "create", "--name", name, "--timezone", "UTC")
    assert created.returncode == 0, created.stderr
    return json.loads(created.stdout)


@pytest.fixture(scope="module")
def secret(live: Stack) -> str:
    return _new_org(live, "Deadline Dental")["secret"]


@pytest.fixture(scope="module")
def holders(module_database: str) -> list[str]:
    """Secrets of organizations to fill every thread with, one request each (an organization
    gets at most MAX_CONCURRENT_PER_ORG, all but one, of a worker's threads)."""
    app = make_app(module_database)
    try:
        uow = app.extensions[KEY].uow
        return [
            create_org(uow(), name=f"Holding Dental {n}", timezone="UTC").secret
            for n in range(2 * THREADS)
        ]
    finally:
        app.extensions[KEY].engine.dispose()


@pytest.fixture
def sql(module_database: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(stack.psycopg_conninfo(module_database), autocommit=True) as conn:
        conn.execute("DELETE FROM appointments")
        yield conn


def _booking(n: int, days: int, phone: str | None = None) -> dict:
    return {
        "message": {
            "type": "tool-calls",
            "call": {"id": f"deadline-call-{uuid.uuid4().hex[:8]}"},
            "customer": {"number": phone or f"+1202555{3000 + n:04d}"},
            "toolCallList": [
                {
                    "id": f"deadline-{n}-{uuid.uuid4().hex[:8]}",
                    "type": "function",
                    "function": {
                        "name": "bookAppointment",
                        "arguments": {
                            "name": f"Caller {n}",
                            "start": local_start("UTC", days=days, hour=9 + n % 8),
                        },
                    },
                }
            ],
        }
    }


def _send(live: Stack, secret: str, body: dict, replies: dict, key: object) -> threading.Thread:
    def post() -> None:
        try:
            replies[key] = live.post(TOOLS, body, {"Authorization": f"Bearer {secret}"}, 30)
        except BaseException as exc:  # judged by the test
            replies[key] = exc

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread


def _waiting(sql: psycopg.Connection) -> int:
    return sql.execute(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchone()[0]


def _hold_every_thread(live, holders, sql, replies) -> tuple[float, list[threading.Thread]]:
    """Send lock-blocked bookings (one per organization) until every worker thread is seen
    waiting on the lock; the ones sent beyond that wait in gunicorn's queue. Returns when the
    last one was sent (every holder's commit limit has passed 3 s after that)."""
    threads: list[threading.Thread] = []
    while _waiting(sql) < THREADS:
        assert len(threads) < len(holders), ("threads never all busy", _waiting(sql), replies)
        n = len(threads)
        last_sent = time.monotonic()
        threads.append(_send(live, holders[n], _booking(n, 3 + n // 8), replies, n))
        time.sleep(0.05)
    return last_sent, threads


def _result_text(reply) -> str:
    assert isinstance(reply, stack.Reply), reply
    assert reply.status == 200, reply.status
    (result,) = reply.json()["results"]
    return result.get("error") or result.get("result")


def test_a_booking_queued_past_its_budget_is_not_run_and_late_work_is_rolled_back(
    live: Stack, secret: str, holders: list[str], sql: psycopg.Connection
):
    replies: dict = {}
    locker = psycopg.connect(stack.psycopg_conninfo(live.database_url))
    try:
        locker.execute("LOCK TABLE appointments IN SHARE ROW EXCLUSIVE MODE")
        last_sent, threads = _hold_every_thread(live, holders, sql, replies)
        queued_at = time.monotonic()
        victim = _send(live, secret, _booking(99, 9), replies, "victim")
        # Past the victim's budget and the holders' commit limit, before nginx gives up.
        release = max(last_sent + COMMIT_LIMIT_S, queued_at + BUDGET_S) + 0.4
        assert release < last_sent + NGINX_READ_TIMEOUT_S - 1, "the machine is too slow"
        time.sleep(release - time.monotonic())
    finally:
        locker.rollback()
        locker.close()
    for thread in [*threads, victim]:
        thread.join(30)

    assert "ran out of time" in _result_text(replies["victim"])
    for n in range(len(threads)):
        assert "ran out of time" in _result_text(replies[n]), n
    assert sql.execute("SELECT count(*) FROM appointments").fetchone()[0] == 0
    assert sql.execute("SELECT count(*) FROM outbox_events").fetchone()[0] == 0


def test_nothing_is_committed_for_a_request_nginx_answered_504(
    live: Stack, holders: list[str], sql: psycopg.Connection
):
    replies: dict = {}
    locker = psycopg.connect(stack.psycopg_conninfo(live.database_url))
    try:
        locker.execute("LOCK TABLE appointments IN SHARE ROW EXCLUSIVE MODE")
        last_sent, threads = _hold_every_thread(live, holders, sql, replies)
        # Hold past nginx's read timeout: the callers got 504 and will never hear an answer.
        time.sleep(last_sent + NGINX_READ_TIMEOUT_S + 0.5 - time.monotonic())
    finally:
        locker.rollback()
        locker.close()
    for thread in threads:
        thread.join(30)
    time.sleep(1)  # the released bookings finish (and roll back) after nginx gave up

    statuses = [getattr(replies[n], "status", replies[n]) for n in range(len(threads))]
    assert statuses == [504] * len(threads)
    assert sql.execute("SELECT count(*) FROM appointments").fetchone()[0] == 0
    for table in ("contacts", "tool_calls", "outbox_events"):
        assert sql.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table


def test_one_organization_flooding_cannot_starve_another(live: Stack, sql: psycopg.Connection):
    flooder, other = _new_org(live, "Flood Dental"), _new_org(live, "Quiet Dental")
    phone = "+12025554000"
    first: dict = {}
    _send(live, flooder["secret"], _booking(0, 12, phone), first, "first").join(30)
    assert "booked" in _result_text(first["first"])
    replies: dict = {}
    flood = 30
    locker = psycopg.connect(stack.psycopg_conninfo(live.database_url))
    try:
        # Every booking of the flooding organization waits for its caller's contact row: long
        # requests, as a leaked secret or a looping assistant would send.
        locker.execute("SELECT id FROM contacts WHERE org_id = %s FOR UPDATE", (flooder["id"],))
        threads = [
            _send(live, flooder["secret"], _booking(n, 13 + n // 8, phone), replies, n)
            for n in range(1, flood + 1)
        ]
        give_up = time.monotonic() + 5
        while _waiting(sql) < SHARE * WORKERS and time.monotonic() < give_up:
            time.sleep(0.02)
        time.sleep(0.5)  # the rest of the flood reaches gunicorn too
        started = time.monotonic()
        _send(live, other["secret"], _booking(50, 14), replies, "other").join(30)
        answered_in = time.monotonic() - started
    finally:
        locker.rollback()
        locker.close()
    for thread in threads:
        thread.join(30)

    assert "booked" in _result_text(replies["other"])
    assert answered_in < BUDGET_S, answered_in
    busy = [n for n in range(1, flood + 1) if "several requests" in _result_text(replies[n])]
    # Each worker ran at most its share of the flood; the rest were turned away at once
    # instead of holding threads.
    assert len(busy) >= flood - SHARE * WORKERS


def test_nginx_limits_the_rate_of_one_credential_not_of_others(live: Stack, secret: str):
    status_update = {"message": {"type": "status-update", "status": "in-progress"}}
    # The same secret however the header is written, with a random X-Vapi-Secret beside it
    # (which the app ignores when there is a bearer token): one credential, one allowance.
    spellings = ["Bearer", "bearer", "BEARER", "Bearer "]
    flooded = [
        live.post(
            TOOLS,
            status_update,
            {
                "Authorization": f"{spellings[n % 4]} bks_flood_not_a_secret",
                "X-Vapi-Secret": uuid.uuid4().hex,
            },
        ).status
        for n in range(120)
    ]
    other = live.post(TOOLS, status_update, {"Authorization": f"Bearer {secret}"})
    # A signed URL has no secret to count by: strangers sending to it must not use up the
    # organization's allowance (the app limits it once a signature is checked).
    strangers = [live.post(f"{TOOLS}/1", status_update, {}).status for _ in range(60)]

    assert 429 in flooded and flooded[0] == 401
    assert other.status == 200
    assert set(strangers) == {401}
