"""Webhook endpoints and replays within limits (#24): no credentials in URLs (and none shown
for endpoints that already have them), a cap on endpoints per organization, "send again"
that neither re-queues what is queued nor runs without limit."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from booking_service.domain.times import utc_now
from booking_service.runtime.extensions import KEY
from booking_service.use_cases.accounts import add_user
from booking_service.use_cases.webhooks import (
    MAX_ENDPOINTS_PER_ORG,
    REPLAY_ACTION,
    REPLAYS_PER_MINUTE,
    Replayed,
    ReplayLimitReached,
    replay,
)
from tests.support.app import make_app
from tests.support.helpers import booked, booking, envelope, post, run_concurrently, tool_call
from tests.support.web import page_token, sign_in_as

SECRET = "s3cr3t-pass"


@pytest.fixture
def app(database_url):
    application = make_app(database_url, WEBHOOK_ALLOW_PRIVATE_TARGETS=True, WEBHOOK_TIMEOUT_S=1)
    yield application
    application.extensions[KEY].engine.dispose()


def run(app, *args):
    return app.test_cli_runner().invoke(args=[str(a) for a in args])


def ok(app, *args):
    result = run(app, *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def refused(app, *args) -> str:
    result = run(app, *args)
    assert result.exit_code == 1, result.output
    return json.loads(result.stderr)["error"]


@pytest.fixture
def signed_in(app, org):
    add_user(app.extensions[KEY].uow(), org.id, "owner@bright.example", "owner", "horse battery!")
    client = app.test_client()
    assert sign_in_as(client, "owner@bright.example", "horse battery!").status_code == 302
    return client


def _stored_with_credentials(db, org_id: int) -> int:
    """An endpoint as an older release stored it: a password in its URL."""
    return db.execute(
        "INSERT INTO webhook_endpoints (org_id, url, secret) VALUES (%s, %s, %s) RETURNING id",
        (org_id, f"https://hookuser:{SECRET}@hooks.example.com/in", "whsec_" + "A" * 43 + "="),
    ).fetchone()[0]


# --- credentials in URLs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://user:pass@127.0.0.1:9/x",
        "http://user@127.0.0.1:9/x",
        "http://:pass@127.0.0.1:9/x",
        "https://a%40b:c@127.0.0.1:9/x",
    ],
)
def test_a_url_with_credentials_is_refused(app, org, db, url):
    assert "no credentials in the URL" in refused(app, "webhook", "add", org.id, "--url", url)
    assert db.execute("SELECT count(*) FROM webhook_endpoints").fetchone() == (0,)


def test_stored_credentials_are_never_printed_nor_shown(app, org, db, signed_in):
    endpoint_id = _stored_with_credentials(db, org.id)

    printed = [
        run(app, "webhook", "list", org.id).stdout,
        run(app, "webhook", "disable", endpoint_id).stdout,
        run(app, "webhook", "enable", endpoint_id).stdout,
        run(app, "webhook", "rotate-secret", endpoint_id).stdout,
    ]
    page = signed_in.get("/app/settings").get_data(as_text=True)

    for shown in (*printed, page):
        assert SECRET not in shown and "hookuser" not in shown
    assert json.loads(printed[0])[0]["url"] == "https://***@hooks.example.com/in"
    assert "https://***@hooks.example.com/in" in page
    # Still stored as it was, so deliveries to it go on (see without_credentials).
    assert SECRET in db.execute("SELECT url FROM webhook_endpoints").fetchone()[0]


# --- endpoints per organization -----------------------------------------------------------


def test_an_organization_has_at_most_the_documented_number_of_endpoints(app, org, make_org, db):
    for n in range(MAX_ENDPOINTS_PER_ORG):
        ok(app, "webhook", "add", org.id, "--url", f"http://127.0.0.1:9/hooks/{n}")

    error = refused(app, "webhook", "add", org.id, "--url", "http://127.0.0.1:9/one-more")

    assert f"at most {MAX_ENDPOINTS_PER_ORG} webhook endpoints" in error
    assert db.execute("SELECT count(*) FROM webhook_endpoints").fetchone() == (
        MAX_ENDPOINTS_PER_ORG,
    )
    other = make_org(name="Other Clinic")  # another organization's cap is its own
    ok(app, "webhook", "add", other.id, "--url", "http://127.0.0.1:9/hooks")


# --- send again ---------------------------------------------------------------------------


def _event_with_endpoint(app, org, db) -> tuple[str, int]:
    """A booking's event and the endpoint it is pending for (nothing listens there)."""
    endpoint_id = ok(app, "webhook", "add", org.id, "--url", "http://127.0.0.1:9/hooks")["id"]
    booked(post(app.test_client(), org, envelope(tool_call(**booking()))))
    (event_id,) = db.execute("SELECT event_id FROM outbox_events").fetchone()
    return event_id, endpoint_id


def _delivery(db) -> list[tuple]:
    return db.execute(
        "SELECT status, attempts, next_attempt_at FROM webhook_deliveries ORDER BY id"
    ).fetchall()


def _over(db) -> None:
    """Every delivery ends (failed after its last attempt): "send again" has work to do."""
    db.execute("UPDATE webhook_deliveries SET status = 'failed', attempts = 8")


def test_a_replay_of_a_delivery_still_queued_changes_nothing_and_says_so(app, org, db, signed_in):
    event_id, endpoint_id = _event_with_endpoint(app, org, db)
    before = _delivery(db)

    printed = ok(app, "webhook", "replay", event_id)
    token = page_token(signed_in, "/app/settings")
    pressed = signed_in.post(
        "/app/settings/webhooks/replay",
        data={"csrf_token": token, "event_id": event_id, "endpoint_id": str(endpoint_id)},
        follow_redirects=True,
    )

    assert printed == {"event_id": event_id, "endpoints": [], "already_queued": [endpoint_id]}
    assert pressed.status_code == 200
    assert "already queued for delivery; nothing changed" in pressed.get_data(as_text=True)
    assert _delivery(db) == before
    assert db.execute("SELECT count(*) FROM org_counters").fetchone() == (0,)  # not counted

    _over(db)
    assert ok(app, "webhook", "replay", event_id)["endpoints"] == [endpoint_id]
    assert _delivery(db)[0][:2] == ("pending", 0)


def test_replays_past_the_limit_in_a_minute_are_refused(app, org, db):
    rt = app.extensions[KEY]
    event_id, endpoint_id = _event_with_endpoint(app, org, db)
    minute = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    for second in range(REPLAYS_PER_MINUTE):
        _over(db)
        done = replay(rt.uow(), event_id, now=minute + timedelta(seconds=second))
        assert done.queued == [endpoint_id]

    _over(db)
    with pytest.raises(ReplayLimitReached):
        replay(rt.uow(), event_id, now=minute + timedelta(seconds=59))
    assert _delivery(db)[0][0] == "failed"  # the refused one queued nothing
    # The next minute is a new window.
    assert replay(rt.uow(), event_id, now=minute + timedelta(minutes=1)).queued == [endpoint_id]


def _fill_this_minute(db, org_id: int) -> None:
    """Use up this minute's replays (waiting out the last seconds of a minute first, so the
    requests that follow are still in it)."""
    while utc_now().second >= 55:
        time.sleep(0.5)
    db.execute(
        "INSERT INTO org_counters (org_id, action, window_start, count) "
        "VALUES (%s, %s, date_trunc('minute', now()), %s)",
        (org_id, REPLAY_ACTION, REPLAYS_PER_MINUTE),
    )


def test_the_cli_and_the_page_refuse_past_the_limit_clearly(app, org, db, signed_in):
    event_id, endpoint_id = _event_with_endpoint(app, org, db)
    _over(db)
    token = page_token(signed_in, "/app/settings")
    _fill_this_minute(db, org.id)

    error = refused(app, "webhook", "replay", event_id)
    pressed = signed_in.post(
        "/app/settings/webhooks/replay",
        data={"csrf_token": token, "event_id": event_id, "endpoint_id": str(endpoint_id)},
    )

    assert f"at most {REPLAYS_PER_MINUTE} events can be sent again per minute" in error
    assert pressed.status_code == 429
    assert "can be sent again per minute" in pressed.get_data(as_text=True)
    assert _delivery(db)[0][0] == "failed"


def test_parallel_replays_in_one_minute_accept_at_most_the_limit(database_url, org, db):
    app = make_app(database_url, WEBHOOK_ALLOW_PRIVATE_TARGETS=True, DB_POOL_SIZE=20)
    rt = app.extensions[KEY]
    try:
        endpoint_id = ok(app, "webhook", "add", org.id, "--url", "http://127.0.0.1:9/x")["id"]
        n = 3 * REPLAYS_PER_MINUTE // 2
        events = []
        for i in range(n):  # events whose delivery is over, each one a real replay
            events.append(f"msg_parallel{i:02d}")
            db.execute(
                "WITH e AS (INSERT INTO outbox_events (org_id, event_id, type, payload) "
                "VALUES (%s, %s, 'appointment.booked', '{}') RETURNING id) "
                "INSERT INTO webhook_deliveries (org_id, event_id, endpoint_id, status, attempts)"
                " SELECT %s, id, %s, 'failed', 8 FROM e",
                (org.id, events[-1], org.id, endpoint_id),
            )
        minute = datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC)

        results = run_concurrently(n, lambda i: replay(rt.uow(), events[i], now=minute))
    finally:
        rt.engine.dispose()

    accepted = [r for r in results if isinstance(r, Replayed)]
    refusals = [r for r in results if isinstance(r, ReplayLimitReached)]
    assert len(accepted) == REPLAYS_PER_MINUTE, results
    assert len(refusals) == n - REPLAYS_PER_MINUTE, results
    pending = db.execute("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")
    assert pending.fetchone() == (REPLAYS_PER_MINUTE,)
