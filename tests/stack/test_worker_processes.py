"""The outbox worker as it runs in production: `flask --app wsgi worker` processes, killed and
stopped for real, against a real database and a real receiver on loopback."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from booking_service.runtime.extensions import KEY
from booking_service.use_cases.webhooks import add_endpoint
from tests.support.app import TEST_SECRET_KEY, make_app
from tests.support.helpers import booked, booking, count, envelope, local_start, post, tool_call
from tests.support.receiver import Reply, receiver
from tests.support.stack import INHERITED_ENV, ROOT, VENV_BIN, Service, wait_until


@pytest.fixture
def app(database_url):
    application = make_app(database_url, WEBHOOK_ALLOW_PRIVATE_TARGETS=True)
    yield application
    application.extensions[KEY].engine.dispose()


def start_worker(database_url: str, log: Path) -> Service:
    env = {key: value for key, value in os.environ.items() if key in INHERITED_ENV}
    env.update(
        DATABASE_URL=database_url,
        SECRET_KEY=TEST_SECRET_KEY,
        WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
        WEBHOOK_TIMEOUT_S="10",
        WORKER_POLL_S="1",
        LOG_LEVEL="INFO",
    )
    return Service.start(
        log.stem, [str(VENV_BIN / "flask"), "--app", "wsgi", "worker"], log, cwd=ROOT, env=env
    )


def book_some(app, org, n: int) -> None:
    client = app.test_client()
    for i in range(n):
        body = envelope(
            tool_call(**booking(start=local_start(days=5 + i // 8, hour=9 + i % 8))),
            customer=f"+1202555{i:04d}",
            call_id=f"call-{i}",
        )
        booked(post(client, org, body))


def test_two_workers_deliver_each_event_exactly_once(app, database_url, org, db, tmp_path):
    n = 16
    with receiver() as hooks:
        hooks.secrets.append(
            add_endpoint(app.extensions[KEY].uow(), org.id, hooks.url, allow_private=True).secret
        )
        # A little latency per request, so that the two workers really overlap.
        hooks.script = [Reply(200, delay_s=0.05) for _ in range(n)]
        book_some(app, org, n)
        workers = [start_worker(database_url, tmp_path / f"worker-{i}.log") for i in range(2)]
        try:
            wait_until(
                lambda: (
                    count(db, "SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'")
                    == n
                ),
                30,
                "every event delivered",
                *workers,
            )
        finally:
            for worker in workers:
                worker.stop()
        ids = hooks.ids()
        assert len(ids) == n and len(set(ids)) == n, "an event was sent twice"
        assert len(hooks.verified()) == n
        assert all(w.proc.returncode == 0 for w in workers), [w.tail() for w in workers]
        # Both took part (each claims one delivery per transaction).
        assert all("webhook attempt" in w.log_text() for w in workers), [w.tail() for w in workers]


def test_a_worker_killed_mid_post_is_followed_by_a_redelivery_with_the_same_id(
    app, database_url, org, db, tmp_path
):
    with receiver() as hooks:
        hooks.secrets.append(
            add_endpoint(app.extensions[KEY].uow(), org.id, hooks.url, allow_private=True).secret
        )
        hooks.hold = threading.Event()  # the first request waits: the worker is mid-POST
        book_some(app, org, 1)
        first = start_worker(database_url, tmp_path / "first.log")
        try:
            assert hooks.arrived.wait(30), first.tail()
            os.killpg(first.proc.pid, signal.SIGKILL)
            first.proc.wait(timeout=10)
        finally:
            first.stop()
        hooks.hold.set()
        second = start_worker(database_url, tmp_path / "second.log")
        try:
            wait_until(
                lambda: (
                    count(db, "SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'")
                    == 1
                ),
                30,
                "the redelivery",
                second,
            )
        finally:
            second.stop()
        ids = hooks.ids()
        assert len(ids) == 2 and ids[0] == ids[1]
        assert all(r.verified_with for r in hooks.received)
    # The killed attempt left no record; the redelivery is the one attempt recorded.
    assert db.execute("SELECT outcome FROM webhook_attempts").fetchall() == [("delivered",)]


def test_term_finishes_the_attempt_in_hand_then_exits_0(app, database_url, org, db, tmp_path):
    with receiver() as hooks:
        add_endpoint(app.extensions[KEY].uow(), org.id, hooks.url, allow_private=True)
        hooks.hold = threading.Event()
        book_some(app, org, 1)
        worker = start_worker(database_url, tmp_path / "worker.log")
        try:
            assert hooks.arrived.wait(30), worker.tail()
            worker.send(signal.SIGTERM)
            assert worker.wait(1) is None, "it stopped before finishing the attempt"
            hooks.hold.set()
            assert worker.wait(20) == 0, worker.tail()
        finally:
            worker.stop()
    assert db.execute("SELECT status FROM webhook_deliveries").fetchall() == [("delivered",)]
