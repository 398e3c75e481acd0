"""End to end through the production stack: nginx (deploy/nginx.conf) -> gunicorn
(deploy/gunicorn.conf.py) -> PostgreSQL, over real loopback sockets.

The other tests call the Flask app in-process; these send VAPI's large realistic bodies through
the proxy configuration that is deployed, check what the assistant would hear and what the
database holds, and stop gunicorn while bookings are in flight. One stack (and one database,
cloned from the migrated template) serves the whole module, so it starts once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import psycopg
import pytest
from twilio.request_validator import RequestValidator

from booking_service.use_cases.signatures import expected_signature
from tests.support import stack
from tests.support.helpers import local_start
from tests.support.platforms import RETELL_KEY, elevenlabs_body, retell_body, retell_signature
from tests.support.stack import Stack

ZONE = ZoneInfo("America/New_York")
TOOLS = "/api/vapi/tools"
CALLER = "+14155550123"  # the number in the fixtures' phone calls

# Bookings must not collide across tests (one database for the module, and a slot cannot be
# booked twice), so every test owns business days of its own. Times are on the default
# Mon-Fri 09:00-17:00 hours and 15-minute grid, 30 minutes apart (appointments last 30).
PAYLOAD_FIRST_DAY = 2  # the n-th payload test books on business day 2 + n
SHUTDOWN_FIRST_DAY = 10  # two days of 16 half-hour slots
SLOTS_PER_DAY = 16
KILL_FIRST_DAY = 14  # two days for the SIGKILL test


def slot(days: int, index: int) -> str:
    """The index-th half-hour start from 10:00 (wrapping to 09:00) on business day `days`."""
    minutes = (60 + 30 * index) % (SLOTS_PER_DAY * 30)
    return local_start(ZONE, days=days, hour=9 + minutes // 60, minute=minutes % 60)


# --- the stack ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def running(nginx_binary: Path, module_database: str) -> Iterator[Stack]:
    # The shutdown tests fill every thread with one organization's bookings; its fair share
    # of a worker (tested in tests/stack/test_deadlines.py) would turn most of them away.
    started = Stack(
        nginx_binary,
        module_database,
        extra_env={"MAX_CONCURRENT_PER_ORG": "0"},
    ).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def live(running: Stack) -> Stack:
    """The module's stack with gunicorn up (the shutdown test stops it; the next test gets a
    fresh one behind the same nginx)."""
    running.ensure_gunicorn()
    return running


@pytest.fixture(scope="module")
def secret(running: Stack) -> str:
    """An organization created the way an operator does it: the CLI, printing JSON."""
    result = running.flask(
        "org", "create", "--name", "Real Stack Dental", "--timezone", "America/New_York"
    )
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    # Every payload here books for the fixtures' one caller: the per-caller cap (tested on its
    # own) must not be what these stack tests run into.
    raised = running.flask("org", "update", str(created["id"]), "--max-upcoming-per-caller", "100")
    assert raised.returncode == 0, raised.stderr
    assert json.loads(raised.stdout)["max_upcoming_per_caller"] == 100
    return created["secret"]


@pytest.fixture(scope="module")
def sql(module_database: str) -> Iterator[psycopg.Connection]:
    """A connection for looking at what the service wrote."""
    with psycopg.connect(stack.psycopg_conninfo(module_database), autocommit=True) as conn:
        yield conn


def auth(secret: str, request_id: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {secret}"}
    if request_id:
        headers["X-Request-Id"] = request_id
    return headers


def one(sql: psycopg.Connection, query: str, *params: object):
    """The single value a query returns."""
    return sql.execute(query, params).fetchone()[0]


def local(dt: datetime) -> datetime:
    """A database timestamp as naive local wall time, comparable with the starts sent."""
    return dt.astimezone(ZONE).replace(tzinfo=None)


# --- the proxy itself --------------------------------------------------------------------


def test_health_passes_through_with_a_request_id(live: Stack):
    given = live.nginx_port
    with_id = stack.http(given, "GET", "/api/health", headers={"X-Request-Id": "e2e-health-1"})
    without_id = stack.http(given, "GET", "/api/health")

    assert with_id.status == 200, with_id.text
    assert with_id.json() == {
        "status": "ok",
        "database": "ok",
        "schema": "ok",
        "outbox": "ok",
        "calendars": "ok",
        "messages": "ok",
    }
    # The caller's id is kept; without one nginx makes one up. Either way it comes back.
    assert with_id.headers["x-request-id"] == "e2e-health-1"
    assert re.fullmatch(r"[0-9a-f]{32}", without_id.headers["x-request-id"])
    assert with_id.headers["server"] == "nginx"  # server_tokens off: no version


@pytest.mark.parametrize("given", ["r" * 7000, "x up=200 rt=0.001", 'a"b', "id\twith-tab"])
def test_an_odd_request_id_is_replaced_and_cannot_forge_log_fields(live: Stack, given: str):
    reply = stack.http(live.nginx_port, "GET", "/api/health", headers={"X-Request-Id": given})

    assert reply.status == 200
    fresh = reply.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", fresh)
    access_log = live.workdir / "booking_service.access.log"
    stack.wait_until(
        lambda: f'rid="{fresh}" ' in access_log.read_text(), 5, "no access log line", live.nginx
    )
    line = next(x for x in access_log.read_text().splitlines() if fresh in x)
    # One field each: nothing the client sent turned up as a second "up=" or "rt=".
    assert line.count(" up=") == 1 and line.count(" rt=") == 1
    assert given not in line


def test_a_calendar_feed_is_served_through_nginx_and_its_token_is_in_no_log(
    live: Stack, secret: str, sql: psycopg.Connection
):
    org_id, main_id = sql.execute(
        "SELECT r.org_id, r.id FROM resources r JOIN organizations o ON o.id = r.org_id "
        "WHERE o.name = 'Real Stack Dental' AND r.name = 'Main'"
    ).fetchone()
    made = live.flask("calendar", "feed", str(main_id), "--url", "https://book.example.com")
    assert made.returncode == 0, made.stderr
    url = json.loads(made.stdout)["url"]
    token = url.rsplit("/", 1)[1].removesuffix(".ics")
    path = url.removeprefix("https://book.example.com")

    reply = stack.http(live.nginx_port, "GET", path, headers={"X-Request-Id": "e2e-feed-1"})
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/calendar; charset=utf-8"
    assert reply.text.startswith("BEGIN:VCALENDAR")
    # Percent-encoded, it still reaches the feed: the logs must not keep it either way.
    encoded = path.replace(".ics", "%2Eics")
    assert stack.http(live.nginx_port, "GET", encoded).status == 200
    assert stack.http(live.nginx_port, "GET", "/ical/" + "x" * 43 + ".ics").status == 404
    # Every other spelling nginx or the app normalises to the feed (merged slashes, dot
    # segments, encoded letters or slash, a query string), and some that they do not: whatever
    # the answer, no log line may carry the token.
    spellings = [
        "/" + path,
        "/." + path,
        "/api/.." + path,
        path.replace("/ical/", "/%69cal/"),
        path.replace("/ical/", "/%69%63%61%6C/"),
        path.replace("/ical/", "/ical%2F"),
        path.replace("/ical/", "/ical//"),
        path + "?refresh=1",
        path.replace("/ical/", "/ICAL/"),
    ]
    answers = {s: stack.http(live.nginx_port, "GET", s).status for s in spellings}
    # These reach the feed itself: the raw line has no "/ical/" for a plain pattern to find.
    reached = ["/" + path, path.replace("/ical/", "/%69cal/"), path + "?refresh=1"]
    assert all(answers[s] == 200 for s in reached), answers
    # The port-80 server only redirects, and logs as carefully.
    moved = stack.http(live.redirect_port, "GET", "/" + path)
    assert moved.status == 301
    access_log = live.workdir / "booking_service.access.log"
    stack.wait_until(
        lambda: 'rid="e2e-feed-1"' in access_log.read_text(), 5, "no access log line", live.nginx
    )
    assert "/ical/[token]" in access_log.read_text()

    def service_logs() -> str:
        return "\n".join(service.log_text() for service in live.services)

    stack.wait_until(lambda: "/ical/[token]" in service_logs(), 5, "no gunicorn access line")
    assert token not in access_log.read_text()
    assert token not in (live.workdir / "booking_service.error.log").read_text()
    assert token not in service_logs()
    assert org_id


def test_port_80_only_redirects_to_https_and_https_answers_carry_hsts(live: Stack):
    """deploy/nginx.conf serves everything (the owner's page and its password form included)
    on its TLS server only; port 80 sends clients there, except ACME challenges."""
    for path in ("/app/login", "/api/health", "/api/vapi/tools"):
        moved = stack.http(live.redirect_port, "GET", path, headers={"Host": "booking.example"})
        assert moved.status == 301
        assert moved.headers["location"] == f"https://booking.example{path}"
    challenge = stack.http(live.redirect_port, "GET", "/.well-known/acme-challenge/nothing")
    assert challenge.status == 404  # served from the webroot, not redirected
    served = stack.http(live.nginx_port, "GET", "/app/login")
    assert served.status == 200
    assert served.headers["strict-transport-security"] == "max-age=31536000"
    assert (
        stack.http(live.nginx_port, "GET", "/api/health").headers["strict-transport-security"]
        == "max-age=31536000"
    )


def test_the_rest_api_and_manage_links_are_served_and_link_tokens_are_in_no_log(live: Stack):
    """/api/v1 and /b/ pass nginx (#28); a manage link's token, like a feed's, is never logged."""
    document = stack.http(live.nginx_port, "GET", "/api/v1/openapi.json")
    assert document.status == 200 and json.loads(document.text)["openapi"] == "3.1.0"
    assert stack.http(live.nginx_port, "GET", "/api/v1/slots").status == 401
    token = "WzEsMl0.not-a-real-signature-e2e"
    gone = stack.http(live.nginx_port, "GET", f"/b/{token}", headers={"X-Request-Id": "e2e-b-1"})
    assert gone.status == 404
    access_log = live.workdir / "booking_service.access.log"
    stack.wait_until(
        lambda: 'rid="e2e-b-1"' in access_log.read_text(), 5, "no access log line", live.nginx
    )
    assert "/b/[token]" in access_log.read_text()
    assert token not in access_log.read_text()
    assert token not in "\n".join(service.log_text() for service in live.services)


@pytest.mark.parametrize("path", ["/metrics", "/", "/api/other"])
def test_only_the_public_endpoints_are_exposed(live: Stack, path: str):
    reply = stack.http(live.nginx_port, "GET", path)

    assert reply.status == 404
    assert b"booking_service" not in reply.body  # nginx's own page, nothing from the app


def test_a_wrong_secret_gets_the_apps_own_401(live: Stack):
    reply = live.post(TOOLS, {"message": {"type": "tool-calls"}}, auth("bks_1_wrong"))

    assert reply.status == 401
    assert reply.headers["content-type"].startswith("application/json")
    assert "error" in reply.json()


def test_bodies_up_to_the_apps_limit_and_beyond_reach_the_app(live: Stack, secret: str):
    # 1.5 MiB passes nginx (client_max_body_size 2m), so the *app* refuses it, with its JSON;
    # above 2 MiB nginx refuses it itself.
    body = stack.load_payload("tool-calls-book.json", [slot(8, 0)], call_id="e2e-too-large")
    body["message"]["padding"] = "x" * (1536 * 1024)
    by_app = live.post(TOOLS, body, auth(secret))
    body["message"]["padding"] = "x" * (2560 * 1024)
    by_nginx = live.post(TOOLS, body, auth(secret))

    assert by_app.status == 413, by_app.text
    assert by_app.headers["content-type"].startswith("application/json"), by_app.text
    assert by_nginx.status == 413
    assert by_nginx.headers["content-type"].startswith("text/html")


# --- VAPI's realistic payloads -----------------------------------------------------------

PAYLOADS = [
    "tool-calls-book.json",
    "tool-calls-book-string-arguments.json",
    "tool-calls-legacy-toolCalls-only.json",
    "tool-calls-two-calls.json",
    "tool-calls-web-call-email-only.json",
]


@pytest.mark.parametrize("name", PAYLOADS)
def test_realistic_payload_books_through_nginx(live: Stack, secret: str, sql, name: str):
    days = PAYLOAD_FIRST_DAY + PAYLOADS.index(name)
    starts = [slot(days, 0), slot(days, 1)]  # at most two calls per payload
    call_id = f"e2e-call-{uuid.uuid4().hex[:12]}"  # each VAPI call has its own id
    body = stack.load_payload(name, starts, call_id=call_id)
    request_id = f"e2e-{uuid.uuid4().hex[:12]}"
    assert len(json.dumps(body)) > 40_000  # the large bodies VAPI really sends (~46 KB)

    reply = live.post(TOOLS, body, auth(secret, request_id))

    assert reply.status == 200, reply.text + live.logs()
    assert reply.headers["x-request-id"] == request_id
    results = reply.json()["results"]
    ids = stack.tool_call_ids(body)
    assert [entry["toolCallId"] for entry in results] == ids
    booked = [json.loads(entry["result"]) for entry in results]
    assert [result["status"] for result in booked] == ["booked"] * len(ids)
    assert [
        datetime.fromisoformat(result["appointment"]["start"]).replace(tzinfo=None)
        for result in booked
    ] == [datetime.fromisoformat(start) for start in starts[: len(ids)]]

    # Each booking is in the database once, for the caller, with its answer in the ledger.
    rows = sql.execute(
        "SELECT a.tool_call_id, a.reference, a.starts_at, a.status, a.vapi_call_id, "
        "c.phone, c.email, t.answer IS NOT NULL "
        "FROM appointments a JOIN contacts c ON c.id = a.contact_id JOIN tool_calls t "
        "ON t.org_id = a.org_id AND t.tool_call_id = a.tool_call_id "
        "WHERE a.tool_call_id = ANY(%s) ORDER BY a.starts_at",
        (ids,),
    ).fetchall()
    web_call = "customer" not in body["message"]
    caller = (None, "sam.okafor@example.com") if web_call else (CALLER, "maria.lopez@example.com")
    assert [(r[0], r[1], local(r[2]), *r[3:]) for r in rows] == [
        (
            tool_call_id,
            result["appointment"]["reference"],
            datetime.fromisoformat(start),
            "booked",
            call_id,
            *caller,
            True,
        )
        for tool_call_id, result, start in zip(ids, booked, starts, strict=False)
    ]
    # The request id nginx passed on is the one the app logged its work under, and nginx's
    # access log has it too, with gunicorn's status.
    stack.wait_until(
        lambda: request_id in live.gunicorn.log_text(),
        5,
        f"request id {request_id} not in gunicorn's log",
        live.gunicorn,
    )
    access_log = live.workdir / "booking_service.access.log"
    stack.wait_until(
        lambda: f'rid="{request_id}" up=200 ' in access_log.read_text(),
        5,
        f"request id {request_id} not in nginx's access log",
    )


def test_status_update_gets_an_empty_object_and_writes_nothing(live: Stack, secret: str, sql):
    before = one(sql, "SELECT count(*) FROM tool_calls")

    reply = live.post(TOOLS, stack.load_payload("status-update.json", []), auth(secret))

    assert reply.status == 200, reply.text
    assert reply.json() == {}
    assert one(sql, "SELECT count(*) FROM tool_calls") == before


# --- graceful shutdown -------------------------------------------------------------------

FIRST_WAVE = 8  # as many as gunicorn has request threads (2 workers x 4 threads)
SECOND_WAVE = 22  # sent after SIGTERM: to a server that is stopping, then gone


BOOKED_OK = 'booking_tool_calls_total{outcome="ok",tool="bookAppointment"}'


def booked_ok(metrics_text: str) -> float:
    """The counter of successful bookings in a /metrics text (0 before the first)."""
    for line in metrics_text.splitlines():
        if line.startswith(BOOKED_OK + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def booked_ok_by_worker(metrics_dir: Path) -> dict[str, float]:
    """The same counter as each worker's own file holds it (prometheus_client multiprocess
    mode keeps one file per process and sums them when scraped)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    by_worker = {}
    for db_file in metrics_dir.glob("counter_*.db"):
        alone = Path(tempfile.mkdtemp(prefix="one-worker-metrics-"))
        try:
            shutil.copy(db_file, alone / db_file.name)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=str(alone))
            by_worker[db_file.stem] = booked_ok(generate_latest(registry).decode())
        finally:
            shutil.rmtree(alone, ignore_errors=True)
    return by_worker


def test_metrics_aggregate_all_workers_and_logs_are_json_lines(
    live: Stack, secret: str, sql: psycopg.Connection
):
    """Scraped from gunicorn on loopback (nginx does not expose it): multiprocess mode sums the
    workers' counters, and gunicorn's default LOG_FORMAT is JSON with the ids on every line."""
    total = 8
    before = booked_ok(stack.http(live.gunicorn_port, "GET", "/metrics").text)
    day = PAYLOAD_FIRST_DAY + len(PAYLOADS) + 1
    _, bodies = booking_wave("metrics", total, day, 7000)
    outcomes, threads = senders(live, secret, bodies)
    # Held while the wave arrives, so that its bookings wait in flight together: more than one
    # worker's threads are then needed, and both workers' counters must reach the scrape.
    # Eight waiting bookings fill all 2 x 4 threads; released well inside the lock timeout.
    with sql.transaction():
        sql.execute("LOCK TABLE appointments IN SHARE ROW EXCLUSIVE MODE")
        for thread in threads:
            thread.start()
        give_up = time.monotonic() + 2
        while waiting_on_locks(sql) < total and time.monotonic() < give_up:
            time.sleep(0.05)
    for thread in threads:
        thread.join(REQUEST_TIMEOUT_S)
    assert all(isinstance(o, stack.Reply) and o.status == 200 for o in outcomes), outcomes

    reply = stack.http(live.gunicorn_port, "GET", "/metrics")
    assert reply.status == 200
    # Exactly the wave: a counter that never rises, or counts twice, fails here.
    assert booked_ok(reply.text) - before == total
    by_worker = booked_ok_by_worker(live.metrics_dir)
    assert sum(by_worker.values()) == booked_ok(reply.text)
    assert len([v for v in by_worker.values() if v > 0]) >= 2, by_worker
    lines = [
        line for line in live.gunicorn.log_text().splitlines() if '"tool call answered' in line
    ]
    record = json.loads(lines[-1])
    # Every line is one JSON object: the app's, gunicorn's error log and its access log.
    for line in live.gunicorn.log_text().splitlines():
        if line.strip():
            json.loads(line)
    assert record["logger"] == "booking_service.voice.pipeline"
    assert record["outcome"] == "ok" and record["tool"] == "bookAppointment"
    assert record["org_id"] != "-" and record["tool_call_id"].startswith("e2e-metrics-")


REQUEST_TIMEOUT_S = 30.0


def booking_wave(name: str, total: int, first_day: int, first_phone: int):
    """`total` realistic bookings, each its own caller, VAPI call, toolCallId and free slot."""
    ids = [f"e2e-{name}-{i}-{uuid.uuid4().hex[:8]}" for i in range(total)]
    bodies = [
        stack.load_payload(
            "tool-calls-book.json",
            [slot(first_day + i // SLOTS_PER_DAY, i % SLOTS_PER_DAY)],
            call_id=f"e2e-{name}-call-{i}",
            tool_call_ids=[ids[i]],
            customer=f"+1202555{first_phone + i:04d}",
            arguments={"email": f"{name}{i}@example.com"},
        )
        for i in range(total)
    ]
    return ids, bodies


def senders(live: Stack, secret: str, bodies: list[dict]):
    """One (unstarted) thread per body posting it through nginx; outcomes fill in as they end."""
    outcomes: list[stack.Reply | BaseException | None] = [None] * len(bodies)

    def send(i: int) -> None:
        try:
            outcomes[i] = live.post(TOOLS, bodies[i], auth(secret), timeout=REQUEST_TIMEOUT_S)
        except BaseException as exc:  # judged by the test with everything else
            outcomes[i] = exc

    threads = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(len(bodies))]
    return outcomes, threads


def test_sigterm_lets_in_flight_bookings_finish_and_books_nothing_half(
    live: Stack, secret: str, sql
):
    """SIGTERM to gunicorn's master while bookings wait inside it: they all finish.

    The test holds the organization's row lock (FOR UPDATE), which every booking needs in
    KEY SHARE mode for its foreign keys, so the first wave is provably inside gunicorn and
    waiting in PostgreSQL when the signal arrives. The second wave goes out once the master has
    handled the signal, so it meets a server that is stopping and then gone. The lock is
    released well inside gunicorn's graceful timeout (10 s) and the app's lock timeout (3 s).
    Then every answer must match the database exactly.
    """
    gunicorn = live.gunicorn
    org_id = one(sql, "SELECT id FROM organizations WHERE name = 'Real Stack Dental'")
    total = FIRST_WAVE + SECOND_WAVE
    ids, bodies = booking_wave("shutdown", total, SHUTDOWN_FIRST_DAY, first_phone=1000)
    outcomes, threads = senders(live, secret, bodies)
    with psycopg.connect(stack.psycopg_conninfo(live.database_url)) as lock:
        try:
            lock.execute("SELECT 1 FROM organizations WHERE id = %s FOR UPDATE", (org_id,))
            for thread in threads[:FIRST_WAVE]:
                thread.start()
            stack.wait_until(
                lambda: waiting_on_locks(sql) >= FIRST_WAVE // 2,
                10,
                "bookings did not reach PostgreSQL",
                *live.services,
            )
            time.sleep(0.3)  # let the rest of the first wave arrive as well
            in_flight = waiting_on_locks(sql)

            log_offset = gunicorn.log_size()
            gunicorn.send(signal.SIGTERM)
            # Once the master has handled TERM it has closed its listeners and told the
            # workers to stop; only then does the second wave go out.
            stack.wait_until(
                lambda: "Handling signal: term" in gunicorn.log_text(log_offset),
                5,
                "gunicorn did not handle SIGTERM",
                gunicorn,
            )
            for thread in threads[FIRST_WAVE:]:
                thread.start()
                time.sleep(0.02)
            time.sleep(0.3)
        finally:
            lock.rollback()  # releases the organization row: the waiting bookings go on

    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT_S + 5)
    assert not any(thread.is_alive() for thread in threads), "requests did not finish"
    exit_code = gunicorn.wait(timeout=stack.STOP_TIMEOUT_S)
    assert exit_code == 0, f"gunicorn exit code {exit_code}\n{gunicorn.tail()}"
    log = gunicorn.log_text(log_offset)
    assert "WORKER TIMEOUT" not in log and "SIGKILL" not in log, gunicorn.tail()

    appointments = dict(
        sql.execute(
            "SELECT tool_call_id, count(*) FROM appointments "
            "WHERE tool_call_id = ANY(%s) AND status = 'booked' GROUP BY tool_call_id",
            (ids,),
        ).fetchall()
    )
    booked, refused, bad_gateway = [], [], []
    for tool_call_id, outcome in zip(ids, outcomes, strict=True):
        assert isinstance(outcome, stack.Reply), f"{tool_call_id}: {outcome!r}\n{live.logs()}"
        if outcome.status == 200:
            (entry,) = outcome.json()["results"]
            assert entry["toolCallId"] == tool_call_id
            if "result" in entry and json.loads(entry["result"])["status"] == "booked":
                booked.append(tool_call_id)
                assert appointments.get(tool_call_id) == 1, (tool_call_id, entry)
            else:
                refused.append(tool_call_id)
                assert tool_call_id not in appointments, (tool_call_id, entry)
        elif outcome.status == 502:  # nginx: refused, or reset when the workers exited
            bad_gateway.append(tool_call_id)
            assert tool_call_id not in appointments, f"{tool_call_id} booked but answered 502"
        else:
            pytest.fail(f"{tool_call_id}: HTTP {outcome.status} {outcome.text[:300]}")

    # Everything waiting inside gunicorn at SIGTERM was completed and answered, not dropped.
    assert len(booked) >= in_flight >= FIRST_WAVE // 2, (len(booked), in_flight)
    assert bad_gateway, "no request met the stopped server; the test did not test that"
    # No half-done work: nothing was booked without a 200 answer, every ledger row has its
    # answer, and every appointment has its ledger row.
    assert sorted(appointments) == sorted(booked)
    assert one(sql, "SELECT count(*) FROM tool_calls WHERE answer IS NULL") == 0
    orphans = one(
        sql,
        "SELECT count(*) FROM appointments a WHERE NOT EXISTS (SELECT 1 FROM tool_calls t "
        "WHERE t.org_id = a.org_id AND t.tool_call_id = a.tool_call_id)",
    )
    assert orphans == 0


def waiting_on_locks(sql: psycopg.Connection) -> int:
    """How many sessions of the service currently wait for a lock."""
    return one(
        sql,
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )


def gunicorn_workers(master_pid: int) -> list[int]:
    """PIDs whose parent is gunicorn's master (its workers)."""
    workers = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master_pid:
            workers.append(int(stat.parent.name))
    return workers


def test_sigkilled_workers_leave_no_half_written_booking_and_retries_book_once(
    live: Stack, secret: str, sql
):
    """Every worker is SIGKILLed while bookings wait inside them (the organization row is
    locked, as in the SIGTERM test). PostgreSQL rolls back their transactions, so ledger,
    contact and appointment are written together or not at all; the master starts new workers,
    and retrying every toolCallId returns the stored answer or books exactly once."""
    gunicorn = live.gunicorn
    org_id = one(sql, "SELECT id FROM organizations WHERE name = 'Real Stack Dental'")
    total = 12
    ids, bodies = booking_wave("kill", total, KILL_FIRST_DAY, first_phone=3000)
    outcomes, threads = senders(live, secret, bodies)
    with psycopg.connect(stack.psycopg_conninfo(live.database_url)) as lock:
        try:
            lock.execute("SELECT 1 FROM organizations WHERE id = %s FOR UPDATE", (org_id,))
            for thread in threads:
                thread.start()
            # Some bookings inside the workers is all this test needs (the SIGTERM test
            # counts them); a loaded machine gets there later, so the wait is generous.
            stack.wait_until(
                lambda: waiting_on_locks(sql) >= 2,
                20,
                "bookings did not reach PostgreSQL",
                *live.services,
            )
            victims = gunicorn_workers(gunicorn.proc.pid)
            assert victims
            for pid in victims:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        finally:
            lock.rollback()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT_S + 5)
    assert not any(thread.is_alive() for thread in threads)

    def state():
        rows = sql.execute(
            "SELECT t.tool_call_id, t.answer IS NOT NULL, count(a.id) FROM tool_calls t "
            "LEFT JOIN appointments a ON a.org_id = t.org_id AND a.tool_call_id = t.tool_call_id "
            "WHERE t.tool_call_id = ANY(%s) GROUP BY t.tool_call_id, t.answer",
            (ids,),
        ).fetchall()
        orphans = one(
            sql,
            "SELECT count(*) FROM appointments a WHERE a.tool_call_id = ANY(%s) AND NOT EXISTS "
            "(SELECT 1 FROM tool_calls t WHERE t.org_id = a.org_id "
            "AND t.tool_call_id = a.tool_call_id)",
            ids,
        )
        return {r[0]: (r[1], r[2]) for r in rows}, orphans

    ledger, orphans = state()
    # Nothing half-written: each ledger row has its answer and one appointment, and no
    # appointment lacks its ledger row.
    assert orphans == 0
    assert all(value == (True, 1) for value in ledger.values()), ledger
    for tool_call_id, outcome in zip(ids, outcomes, strict=True):
        if isinstance(outcome, stack.Reply) and outcome.status == 200:
            (entry,) = outcome.json()["results"]
            assert ("result" in entry) == (tool_call_id in ledger), entry

    # The master replaced the workers; retrying every call books each exactly once.
    stack.wait_until(
        lambda: stack.answers_200(live.nginx_port, "/api/health"), 10, "no new workers", gunicorn
    )
    for body in bodies:
        reply = live.post(TOOLS, body, auth(secret), timeout=REQUEST_TIMEOUT_S)
        (entry,) = reply.json()["results"]
        assert json.loads(entry["result"])["status"] == "booked", entry
    ledger, orphans = state()
    assert orphans == 0
    assert sorted(ledger) == sorted(ids)
    assert all(value == (True, 1) for value in ledger.values()), ledger


def test_a_signed_request_nginx_resends_after_its_worker_died_is_answered_once(live: Stack, sql):
    """A worker dies while a signed booking waits inside it, after its signature was recorded.
    nginx re-sends the request to the next worker (proxy_next_upstream error non_idempotent);
    the repeat of the signature must run (nothing was answered yet), not be refused as a
    replay, and the booking must exist once."""
    created = live.flask(
        "org", "create", "--name", "Signed Stack Dental", "--timezone", "America/New_York"
    )
    assert created.returncode == 0, created.stderr
    org_id = json.loads(created.stdout)["id"]
    signed = live.flask("org", "hmac", str(org_id))
    assert signed.returncode == 0, signed.stderr
    key = json.loads(signed.stdout)["hmac_secret"]
    request_id = f"e2e-resend-{uuid.uuid4().hex[:8]}"
    _, (body,) = booking_wave("resend", 1, KILL_FIRST_DAY + 1, first_phone=5000)
    raw = json.dumps(body).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Signature": expected_signature(key, timestamp, raw),
        "X-Timestamp": timestamp,
        "X-Request-Id": request_id,
    }
    outcome: list = []
    sender = threading.Thread(
        target=lambda: outcome.append(
            stack.http(live.nginx_port, "POST", f"{TOOLS}/{org_id}", raw, headers, timeout=30)
        ),
        daemon=True,
    )
    gunicorn = live.gunicorn
    with psycopg.connect(stack.psycopg_conninfo(live.database_url)) as lock:
        try:
            # Not the organization's row: recording the signature (a foreign key to it) must
            # get through, the booking's insert must not.
            lock.execute("LOCK TABLE appointments IN SHARE ROW EXCLUSIVE MODE")
            # nginx re-sends to its single server only when the connection that failed was a
            # cached keep-alive one (a fresh connection's error is a plain 502, as the config
            # says). Leave one in nginx's cache (idle limit 4 s) right before the booking, so
            # the test does not depend on whether earlier traffic happened in the last 4 s.
            assert stack.http(live.nginx_port, "GET", "/api/health").status == 200
            sender.start()
            stack.wait_until(lambda: waiting_on_locks(sql) >= 1, 20, "no booking waits", gunicorn)
            assert one(sql, "SELECT count(*) FROM webhook_signatures WHERE org_id = %s", org_id)
            for pid in gunicorn_workers(gunicorn.proc.pid):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        finally:
            lock.rollback()
    sender.join(REQUEST_TIMEOUT_S)

    (reply,) = outcome
    assert reply.status == 200, reply.text
    (entry,) = reply.json()["results"]
    assert json.loads(entry["result"])["status"] == "booked", entry
    assert one(sql, "SELECT count(*) FROM appointments WHERE org_id = %s", org_id) == 1
    # It was nginx that tried again: its log has the failed attempts and the answer for the
    # one request. One 502 per dead cached connection it tried (the warm-up may have left
    # several), then the fresh connection's 200.
    access_log = live.workdir / "booking_service.access.log"
    stack.wait_until(
        lambda: request_id in access_log.read_text(), 5, "no access log line", live.nginx
    )
    line = next(x for x in access_log.read_text().splitlines() if request_id in x)
    assert re.search(r" up=(502, )+200 ", line), line


def test_twilio_opt_out_webhook_is_verified_through_nginx(live: Stack, secret: str, sql):
    """Twilio signs the URL it called; behind nginx the app must rebuild exactly that URL
    (scheme, host and port from the forwarded headers) to accept a genuine STOP and refuse a
    forged one."""
    org_id = one(sql, "SELECT id FROM organizations WHERE name = 'Real Stack Dental'")
    token = "stack-twilio-token-" + "t" * 13
    configured = live.flask(
        "org",
        "sms",
        str(org_id),
        "--account-sid",
        "AC" + "3" * 32,
        "--auth-token",
        token,
        "--from",
        "+14155550100",
    )
    assert configured.returncode == 0, configured.stderr
    assert token not in configured.stdout
    url = f"http://127.0.0.1:{live.nginx_port}/api/twilio/sms/{org_id}"
    form = {
        "From": "+12025550177",
        "To": "+14155550100",
        "Body": "STOP",
        "MessageSid": "SM" + "4" * 32,
    }
    body = urlencode(form).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    def send(signature: str) -> stack.Reply:
        return stack.http(
            live.nginx_port,
            "POST",
            f"/api/twilio/sms/{org_id}",
            body,
            {**headers, "X-Twilio-Signature": signature},
        )

    forged = send(RequestValidator("not-the-token").compute_signature(url, form))
    genuine = send(RequestValidator(token).compute_signature(url, form))

    assert forged.status == 401
    assert genuine.status == 200 and b"<Response>" in genuine.body
    assert one(sql, "SELECT count(*) FROM sms_opt_outs WHERE phone = '+12025550177'") == 1


# --- Retell and ElevenLabs through nginx -------------------------------------------------


def test_retell_and_elevenlabs_reach_the_app_through_nginx(live: Stack, secret: str, sql):
    org_id = one(sql, "SELECT id FROM organizations WHERE name = 'Real Stack Dental'")
    stored = live.flask("org", "retell", str(org_id), "--api-key", RETELL_KEY)
    assert stored.returncode == 0, stored.stderr
    assert RETELL_KEY not in stored.stdout
    retell = json.dumps(
        retell_body(
            "bookAppointment",
            {"name": "Maria", "start": slot(18, 0)},
            caller=CALLER,
            call_id=f"retell-{uuid.uuid4().hex[:12]}",
        )
    ).encode()
    path = f"/api/retell/{org_id}/tools"
    headers = {"Content-Type": "application/json"}

    unsigned = stack.http(live.nginx_port, "POST", path, retell, headers)
    signed = stack.http(
        live.nginx_port,
        "POST",
        path,
        retell,
        {**headers, "X-Retell-Signature": retell_signature(retell)},
    )
    elevenlabs = live.post(
        "/api/elevenlabs/tools/bookAppointment",
        elevenlabs_body(
            {"name": "Maria", "start": slot(18, 1)},
            caller=CALLER,
            call_id=f"conv_{uuid.uuid4().hex[:12]}",
        ),
        auth(secret),
    )

    assert unsigned.status == 401 and "error" in unsigned.json()
    assert signed.status == 200, signed.text + live.logs()
    assert signed.json()["status"] == "booked"
    assert elevenlabs.status == 200, elevenlabs.text
    assert elevenlabs.json()["status"] == "booked"
    assert sql.execute(
        "SELECT platform, count(*) FROM tool_calls WHERE platform <> 'vapi' GROUP BY 1 ORDER BY 1"
    ).fetchall() == [("elevenlabs", 1), ("retell", 1)]
