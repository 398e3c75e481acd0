"""Events out: the outbox, deliveries, retries and signatures, against real PostgreSQL and a
real HTTP receiver on loopback that verifies each delivery with `standardwebhooks`."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from booking_service.domain.times import utc_now
from booking_service.runtime.extensions import KEY
from booking_service.use_cases.deliver_webhooks import MAX_ATTEMPTS
from booking_service.use_cases.webhooks import add_endpoint, replay, rotate_secret, set_enabled
from booking_service.worker.loop import Worker
from tests.support.app import make_app
from tests.support.helpers import (
    Clock,
    booked,
    booking,
    count,
    envelope,
    error_of,
    local_start,
    post,
    run_concurrently,
    tool_call,
)
from tests.support.receiver import Reply, receiver


@pytest.fixture
def hooks_app(database_url):
    """The service as the worker runs it in tests: loopback receivers allowed, 1 s timeout."""
    app = make_app(
        database_url, WEBHOOK_ALLOW_PRIVATE_TARGETS=True, WEBHOOK_TIMEOUT_S=1, DB_POOL_SIZE=12
    )
    yield app
    app.extensions[KEY].engine.dispose()


@pytest.fixture
def rt(hooks_app):
    return hooks_app.extensions[KEY]


@pytest.fixture
def client(hooks_app):
    return hooks_app.test_client()


def worker(rt, clock=None) -> Worker:
    return Worker(rt.uow, rt.settings, clock=clock or utc_now, jitter=lambda: 1.0)


def endpoint(rt, org, url: str, *events: str):
    return add_endpoint(rt.uow(), org.id, url, events, allow_private=True)


def test_a_booking_writes_one_event_with_the_documented_payload(client, org, db):
    result = booked(
        post(client, org, envelope(tool_call(**booking(email="maria@example.com")), call_id="c-9"))
    )

    (row,) = db.execute("SELECT event_id, type, payload FROM outbox_events").fetchall()
    event_id, kind, body = row
    data = body["data"]
    assert event_id.startswith("msg_") and kind == "appointment.booked"
    assert body["type"] == "appointment.booked" and body["timestamp"].endswith("+00:00")
    assert data == {
        "organizationId": org.id,
        "reference": result["appointment"]["reference"],
        "status": "booked",
        "start": result["appointment"]["start"],
        "end": result["appointment"]["end"],
        "timezone": "America/New_York",
        "resource": "Main",
        "service": None,
        "name": "Maria Lopez",
        "phone": "+14155550123",
        "email": "maria@example.com",
        "source": "vapi",
    }


def test_a_repeated_tool_call_and_a_refused_booking_write_no_event(client, org, db):
    body = envelope(tool_call(call_id="tc-1", **booking()))
    booked(post(client, org, body))
    booked(post(client, org, body))  # the same tool call again: the stored answer
    error_of(post(client, org, envelope(tool_call(**booking(start="2020-01-06T10:00")))))

    assert count(db, "SELECT count(*) FROM outbox_events") == 1


def test_reschedule_and_cancel_carry_previous_start_and_reason(client, org, db):
    reference = booked(post(client, org, envelope(tool_call(**booking()))))["appointment"][
        "reference"
    ]
    new_start = local_start(days=8, hour=11)
    post(
        client,
        org,
        envelope(tool_call("rescheduleAppointment", reference=reference, newStart=new_start)),
    )
    post(client, org, envelope(tool_call("cancelAppointment", reference=reference, reason="ill")))

    rows = db.execute("SELECT type, payload FROM outbox_events ORDER BY id").fetchall()
    assert [kind for kind, _ in rows] == [
        "appointment.booked",
        "appointment.rescheduled",
        "appointment.cancelled",
    ]
    moved, gone = rows[1][1]["data"], rows[2][1]["data"]
    assert (
        moved["start"].startswith(new_start)
        and moved["previousStart"] == rows[0][1]["data"]["start"]
    )
    assert (gone["status"], gone["reason"]) == ("cancelled", "ill")


def test_concurrent_bookings_give_exactly_one_event_and_one_delivery_each(hooks_app, rt, org, db):
    n = 10
    with receiver() as hooks:
        created = endpoint(rt, org, hooks.url)
        hooks.secrets.append(created.secret)

        def book(i):
            body = envelope(
                tool_call(**booking(start=local_start(days=5 + i // 8, hour=9 + i % 8))),
                customer=f"+1202555{i:04d}",
                call_id=f"call-{i}",
            )
            return post(hooks_app.test_client(), org, body)

        results = run_concurrently(n, book)
        assert all(r.status_code == 200 and "result" in r.get_json()["results"][0] for r in results)
        assert worker(rt).deliver_due() == n

        assert count(db, "SELECT count(*) FROM outbox_events") == n
        assert count(db, "SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'") == n
        verified = hooks.verified()
        assert len(verified) == n and len({r.webhook_id for r in verified}) == n
        references = {r.payload["data"]["reference"] for r in verified}
        assert references == {r for (r,) in db.execute("SELECT reference FROM appointments")}


def test_a_receiver_failing_twice_sees_one_id_three_times_and_the_delivery_ends_delivered(
    client, rt, org, db
):
    clock = Clock()
    with receiver() as hooks:
        hooks.secrets.append(endpoint(rt, org, hooks.url).secret)
        hooks.script = [Reply(500), Reply(503), Reply(200)]
        booked(post(client, org, envelope(tool_call(**booking()))))
        work = worker(rt, clock)

        assert work.deliver_due() == 1  # immediately: 500
        assert work.deliver_due() == 0  # the retry is 5 s away
        clock.advance(timedelta(seconds=5))
        assert work.deliver_due() == 1  # 503
        clock.advance(timedelta(minutes=4))
        assert work.deliver_due() == 0  # 5 min after the second attempt, not yet
        clock.advance(timedelta(minutes=1))
        assert work.deliver_due() == 1  # 200

        ids = hooks.ids()
        assert len(ids) == 3 and len(set(ids)) == 1
        assert all(r.verified_with for r in hooks.received)
    assert db.execute("SELECT status, attempts FROM webhook_deliveries").fetchall() == [
        ("delivered", 3)
    ]
    outcomes = db.execute(
        "SELECT status_code, outcome FROM webhook_attempts ORDER BY id"
    ).fetchall()
    assert outcomes == [(500, "retry"), (503, "retry"), (200, "delivered")]


def test_410_disables_the_endpoint_and_later_events_wait_for_it(client, rt, org, db):
    with receiver() as hooks:
        created = endpoint(rt, org, hooks.url)
        hooks.script = [Reply(410)]
        booked(post(client, org, envelope(tool_call(**booking()))))
        worker(rt).deliver_due()
        booked(post(client, org, envelope(tool_call(**booking(start=local_start(days=8))))))

        assert worker(rt).deliver_due() == 0
        assert len(hooks.received) == 1
    row = db.execute("SELECT disabled_at IS NOT NULL, disabled_reason FROM webhook_endpoints")
    assert row.fetchone() == (True, "the receiver answered 410 Gone")
    # The later event waits for the endpoint; enabled again, it is delivered.
    assert db.execute("SELECT status FROM webhook_deliveries ORDER BY id").fetchall() == [
        ("failed",),
        ("pending",),
    ]
    assert set_enabled(rt.uow(), created.endpoint.id, enabled=True).disabled_at is None
    with receiver() as again:
        db.execute("UPDATE webhook_endpoints SET url = %s", (again.url,))
        assert worker(rt).deliver_due() == 1
        assert len(again.received) == 1


def test_retry_after_is_honoured(client, rt, org, db):
    clock = Clock()
    with receiver() as hooks:
        endpoint(rt, org, hooks.url)
        hooks.script = [Reply(429, {"Retry-After": "3600"})]
        booked(post(client, org, envelope(tool_call(**booking()))))
        worker(rt, clock).deliver_due()

    next_at, attempted_at = db.execute(
        "SELECT d.next_attempt_at, a.attempted_at FROM webhook_deliveries d "
        "JOIN webhook_attempts a ON a.delivery_id = d.id"
    ).fetchone()
    # The schedule says 5 s; the receiver asked for an hour.
    assert next_at - attempted_at >= timedelta(seconds=3599)


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(302, {"Location": "http://127.0.0.1:9/elsewhere"}), None),
        (Reply(200, delay_s=2.0), "timed out after 1 s"),
    ],
    ids=["redirect not followed", "timeout"],
)
def test_redirects_and_timeouts_are_retried_not_delivered(client, rt, org, db, reply, error):
    with receiver() as hooks:
        endpoint(rt, org, hooks.url)
        hooks.script = [reply]
        booked(post(client, org, envelope(tool_call(**booking()))))
        worker(rt).deliver_due()
        assert [r.path for r in hooks.received] == ["/hooks"]

    attempt = db.execute("SELECT outcome, error FROM webhook_attempts").fetchone()
    assert attempt[0] == "retry" and attempt[1] == error
    assert db.execute("SELECT status FROM webhook_deliveries").fetchone() == ("pending",)


def test_after_the_last_attempt_the_delivery_fails_and_a_replay_delivers_it(client, rt, org, db):
    clock = Clock()
    with receiver() as hooks:
        hooks.secrets.append(endpoint(rt, org, hooks.url).secret)
        hooks.script = [Reply(500)] * MAX_ATTEMPTS
        booked(post(client, org, envelope(tool_call(**booking()))))
        work = worker(rt, clock)
        for _ in range(MAX_ATTEMPTS):
            assert work.deliver_due() == 1
            clock.advance(timedelta(hours=25))
        assert db.execute("SELECT status, attempts FROM webhook_deliveries").fetchone() == (
            "failed",
            MAX_ATTEMPTS,
        )

        (event_id,) = db.execute("SELECT event_id FROM outbox_events").fetchone()
        assert replay(rt.uow(), event_id).queued != []
        assert worker(rt).deliver_due() == 1
        assert hooks.ids() == [event_id] * (MAX_ATTEMPTS + 1)
    assert db.execute("SELECT status FROM webhook_deliveries").fetchone() == ("delivered",)


def test_during_a_rotation_both_secrets_verify(client, rt, org, db):
    with receiver() as hooks:
        old = endpoint(rt, org, hooks.url)
        new = rotate_secret(rt.uow(), old.endpoint.id, grace_minutes=60)
        hooks.secrets.extend([old.secret, new.secret])
        booked(post(client, org, envelope(tool_call(**booking()))))
        worker(rt).deliver_due()

        (received,) = hooks.received
        assert received.verified_with == [old.secret, new.secret]
        assert len(received.signature.split(" ")) == 2

        after = rotate_secret(rt.uow(), old.endpoint.id)  # no grace: only the newest signs
        hooks.secrets[:] = [new.secret, after.secret]
        booked(post(client, org, envelope(tool_call(**booking(start=local_start(days=8))))))
        worker(rt).deliver_due()
        assert hooks.received[-1].verified_with == [after.secret]


def test_an_endpoint_gets_only_the_events_it_asked_for(client, rt, org, db):
    with receiver() as hooks:
        endpoint(rt, org, hooks.url, "appointment.cancelled")
        reference = booked(post(client, org, envelope(tool_call(**booking()))))["appointment"][
            "reference"
        ]
        post(client, org, envelope(tool_call("cancelAppointment", reference=reference)))
        worker(rt).deliver_due()

        assert [json.loads(r.body)["type"] for r in hooks.received] == ["appointment.cancelled"]


def test_another_organizations_endpoint_never_sees_an_event(client, rt, make_org, db):
    a, b = make_org(name="A"), make_org(name="B")
    with receiver() as hooks:
        endpoint(rt, b, hooks.url)
        booked(post(client, a, envelope(tool_call(**booking()))))
        assert worker(rt).deliver_due() == 0
        assert hooks.received == []


def test_health_reports_a_lagging_outbox_and_metrics_show_it(database_url, org, db):
    app = make_app(database_url, OUTBOX_LAG_ALERT_S=0, WEBHOOK_ALLOW_PRIVATE_TARGETS=True)
    try:
        rt = app.extensions[KEY]
        endpoint(rt, org, "http://127.0.0.1:9/nobody-listens")
        client = app.test_client()
        booked(post(client, org, envelope(tool_call(**booking()))))
        db.execute("UPDATE webhook_deliveries SET next_attempt_at = now() - interval '1 minute'")

        health = client.get("/api/health")
        metrics = client.get("/metrics").get_data(as_text=True)
    finally:
        app.extensions[KEY].engine.dispose()
    assert health.status_code == 200 and health.get_json()["outbox"] == "lagging"
    lag = next(
        line for line in metrics.splitlines() if line.startswith("booking_outbox_lag_seconds")
    )
    assert float(lag.split()[-1]) >= 60
    assert 'booking_webhook_deliveries{status="pending"} 1.0' in metrics


@pytest.mark.parametrize("value", ["inf", "1e20", "-5", "nan", "Wed, 21 Oct 9999 07:28:00 GMT"])
def test_no_retry_after_value_can_crash_the_worker_or_push_past_a_day(client, rt, org, db, value):
    with receiver() as hooks:
        endpoint(rt, org, hooks.url)
        hooks.script = [Reply(429, {"Retry-After": value})]
        booked(post(client, org, envelope(tool_call(**booking()))))
        assert worker(rt).deliver_due() == 1

    next_at, attempted_at = db.execute(
        "SELECT d.next_attempt_at, a.attempted_at FROM webhook_deliveries d "
        "JOIN webhook_attempts a ON a.delivery_id = d.id"
    ).fetchone()
    assert timedelta(0) < next_at - attempted_at <= timedelta(hours=24, seconds=1)


def test_a_url_the_http_client_refuses_is_a_recorded_failed_attempt(client, rt, org, db):
    with receiver() as hooks:
        endpoint(rt, org, hooks.url)
        db.execute("UPDATE webhook_endpoints SET url = url || chr(1)")  # httpx refuses it
        booked(post(client, org, envelope(tool_call(**booking()))))
        assert worker(rt).deliver_due() == 1

    outcome, error = db.execute("SELECT outcome, error FROM webhook_attempts").fetchone()
    assert outcome == "retry" and error


def test_a_receiver_dripping_its_answer_cannot_hold_an_attempt_past_the_timeout(
    client, rt, org, db
):
    with receiver() as hooks:
        endpoint(rt, org, hooks.url)
        hooks.script = [Reply(200, body=b"x" * 20, drip_s=0.3)]  # 6 s in all, 0.3 s apart
        booked(post(client, org, envelope(tool_call(**booking()))))
        started = time.monotonic()
        worker(rt).deliver_due()
        took = time.monotonic() - started

    outcome, error = db.execute("SELECT outcome, error FROM webhook_attempts").fetchone()
    assert (outcome, error) == ("retry", "timed out after 1 s")
    assert took < 3


def test_metrics_show_an_event_that_has_waited_long_for_a_retry(database_url, org, db):
    """Not due (its next retry is an hour away) yet 20 hours undelivered: the lag gauge says 0,
    the oldest-undelivered gauge says 20 h, and the hour's attempts show the retries."""
    app = make_app(database_url, WEBHOOK_ALLOW_PRIVATE_TARGETS=True)
    try:
        rt = app.extensions[KEY]
        endpoint(rt, org, "http://127.0.0.1:9/nobody-listens")
        client = app.test_client()
        booked(post(client, org, envelope(tool_call(**booking()))))
        worker(rt).deliver_due()  # connection refused: a retry
        db.execute("UPDATE outbox_events SET created_at = now() - interval '20 hours'")
        db.execute("UPDATE webhook_deliveries SET next_attempt_at = now() + interval '1 hour'")

        lines = client.get("/metrics").get_data(as_text=True).splitlines()
    finally:
        app.extensions[KEY].engine.dispose()

    def value(prefix: str) -> float:
        return float(next(line for line in lines if line.startswith(prefix)).split()[-1])

    assert value("booking_outbox_lag_seconds") == 0
    assert value("booking_outbox_oldest_undelivered_seconds") >= 20 * 3600
    assert value('booking_webhook_attempts_last_hour{outcome="retry"}') == 1


def test_signing_secrets_are_stored_sealed_and_legacy_plain_ones_still_sign(
    hooks_app, rt, client, org, db
):
    with receiver([]) as hooks:
        created = endpoint(rt, org, hooks.url)
        hooks.secrets.append(created.secret)
        stored = db.execute("SELECT secret FROM webhook_endpoints").fetchone()[0]
        assert stored.startswith("fernet:") and created.secret not in stored

        # A secret stored before sealing existed (plain text) still signs, until reseal.
        db.execute("UPDATE webhook_endpoints SET secret = %s", (created.secret,))
        booked(post(client, org, envelope(tool_call(**booking()))))
        worker(rt).deliver_due()
        assert len(hooks.received) == 1 and hooks.received[0].verified_with

        resealed = hooks_app.test_cli_runner().invoke(args=["secrets", "reseal"])
        assert resealed.exit_code == 0 and '"webhook_endpoints": 1' in resealed.output
        again = db.execute("SELECT secret FROM webhook_endpoints").fetchone()[0]
        assert again.startswith("fernet:")
        booked(post(client, org, envelope(tool_call(**booking(start=local_start(days=8))))))
        worker(rt).deliver_due()
        assert len(hooks.received) == 2 and hooks.received[1].verified_with


def test_without_secret_key_no_endpoint_is_added(database_url, org):
    app = make_app(database_url, SECRET_KEY="", WEBHOOK_ALLOW_PRIVATE_TARGETS=True)
    try:
        result = app.test_cli_runner().invoke(
            args=["webhook", "add", str(org.id), "--url", "http://127.0.0.1:9/x"]
        )
    finally:
        app.extensions[KEY].engine.dispose()

    assert result.exit_code == 1 and "SECRET_KEY is not set" in result.output
