"""One organization's slow receivers do not delay another's webhooks and messages (#24).

The finding: one serial loop delivered every tenant's webhooks, and SMS and email went out only
when no webhook was due; organization B's four slow endpoints delayed A's webhook by 241 s and
A's SMS and email by 964 s. Now messages have a thread of their own, webhooks are sent by
WEBHOOK_CONCURRENCY threads with at most one per organization, and an endpoint that keeps
failing has its circuit opened.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from booking_service.domain.times import utc_now
from booking_service.runtime.extensions import KEY
from booking_service.use_cases.deliver_webhooks import CIRCUIT_THRESHOLD
from booking_service.use_cases.orgs import create_org
from booking_service.use_cases.webhooks import add_endpoint
from booking_service.worker.loop import Worker
from tests.support.app import Org, make_app
from tests.support.helpers import booked, booking, envelope, local_start, post, tool_call
from tests.support.notifications import CALLER, book
from tests.support.receiver import Reply, receiver


@pytest.fixture
def app(env):
    application = make_app(
        env["DATABASE_URL"],
        **{k: v for k, v in env.items() if k != "DATABASE_URL"},
        WEBHOOK_ALLOW_PRIVATE_TARGETS=True,
        WEBHOOK_TIMEOUT_S=1,
        WEBHOOK_CONCURRENCY=2,
        DB_POOL_SIZE=12,
    )
    yield application
    application.extensions[KEY].engine.dispose()


def wait_for(condition, seconds: float = 20) -> bool:
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_another_organizations_slow_endpoints_delay_our_webhook_and_sms_by_at_most_one_exchange(
    app, rt, org, twilio
):
    other = create_org(rt.uow(), name="Slow Salon", timezone="America/New_York")
    b = Org(other.org, other.secret)
    hold = threading.Event()  # B's receivers never answer: every attempt runs to its timeout
    with receiver() as ours, receiver() as slow:
        slow.hold = hold
        add_endpoint(rt.uow(), org.id, ours.url, [], allow_private=True)
        for n in range(4):
            add_endpoint(rt.uow(), b.id, f"{slow.url}/{n}", [], allow_private=True)
        for hour in (9, 10, 11):  # 12 slow deliveries, all due before ours
            body = envelope(tool_call(**booking(start=local_start(days=3, hour=hour))))
            booked(post(app.test_client(), b, body))
        book(app, org, local_start(days=3, hour=14))

        worker = Worker(rt.uow, rt.settings)
        running = threading.Thread(target=worker.run)
        running.start()
        try:
            assert wait_for(lambda: ours.ids())
            # Served beside B's first attempts, not after B's twelve (12 s of timeouts).
            assert len(slow.ids()) <= 2
            assert wait_for(lambda: twilio.sent_to(CALLER))
            assert len(slow.ids()) <= 3
        finally:
            worker.stop()
            hold.set()
            running.join(30)
    assert not running.is_alive()


def test_an_endpoint_that_keeps_failing_is_left_alone_until_its_circuit_closes(app, rt, org, db):
    class Clock:
        def __init__(self) -> None:
            self.offset = timedelta(0)

        def __call__(self):
            return utc_now() + self.offset

    clock = Clock()
    with receiver() as hooks:
        hooks.script = [Reply(500)] * CIRCUIT_THRESHOLD
        made = add_endpoint(rt.uow(), org.id, hooks.url, [], allow_private=True)
        for day in range(CIRCUIT_THRESHOLD + 1):
            book(app, org, local_start(days=3 + day, hour=9))
        work = Worker(rt.uow, rt.settings, clock=clock, jitter=lambda: 1.0)
        for _ in range(CIRCUIT_THRESHOLD):
            assert work.webhooks.deliver_one()  # each a first attempt of another event, each a 500
        failures, open_until = db.execute(
            "SELECT consecutive_failures, circuit_open_until FROM webhook_endpoints WHERE id = %s",
            (made.endpoint.id,),
        ).fetchone()
        assert failures == CIRCUIT_THRESHOLD
        assert abs(open_until - (clock() + timedelta(seconds=30))) < timedelta(seconds=3)
        # The sixth event's delivery is due, but its endpoint is not tried while open.
        assert not work.webhooks.deliver_one()
        assert len(hooks.ids()) == CIRCUIT_THRESHOLD
        clock.offset += timedelta(seconds=31)
        assert work.webhooks.deliver_one()  # half open: one attempt goes, and it succeeds
        assert db.execute(
            "SELECT consecutive_failures, circuit_open_until FROM webhook_endpoints WHERE id = %s",
            (made.endpoint.id,),
        ).fetchone() == (0, None)
