"""`flask webhook ...` and `flask worker --once` as an operator runs them, against a real database
and a real receiver on loopback."""

from __future__ import annotations

import json

import pytest

from booking_service.runtime.extensions import KEY
from tests.support.app import make_app
from tests.support.helpers import booked, booking, envelope, post, tool_call
from tests.support.receiver import Reply, receiver


@pytest.fixture
def app(database_url):
    application = make_app(database_url, WEBHOOK_ALLOW_PRIVATE_TARGETS=True, WEBHOOK_TIMEOUT_S=1)
    yield application
    application.extensions[KEY].engine.dispose()


def run(app, *args):
    result = app.test_cli_runner().invoke(args=[str(a) for a in args])
    return result


def ok(app, *args):
    result = run(app, *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_add_list_deliver_and_see_every_attempt(app, org, db):
    with receiver() as hooks:
        added = ok(app, "webhook", "add", org.id, "--url", hooks.url)
        assert added["secret"].startswith("whsec_")
        assert added["events"] == [
            "appointment.booked",
            "appointment.rescheduled",
            "appointment.cancelled",
            "appointment.completed",
            "appointment.no_show",
            "messages.budget_reached",
            "calendar.disconnected",
            "appointment.confirmed",
            "waitlist.offered",
            "waitlist.booked",
            "call.ended",
        ]
        hooks.secrets.append(added["secret"])
        hooks.script = [Reply(500), Reply(200)]
        booked(post(app.test_client(), org, envelope(tool_call(**booking()))))

        assert ok(app, "worker", "--once") == {"attempts": 1}
        listed = ok(app, "webhook", "list", org.id)
        failed = ok(app, "webhook", "deliveries", added["id"], "--failed")

    assert [e["id"] for e in listed] == [added["id"]] and "secret" not in listed[0]
    assert len(failed) == 1
    assert (failed[0]["status"], failed[0]["outcome"], failed[0]["delivery"]) == (
        500,
        "retry",
        "pending",
    )
    assert failed[0]["event_id"].startswith("msg_") and failed[0]["latency_ms"] >= 0


def test_disable_enable_rotate_and_replay(app, org, db):
    with receiver() as hooks:
        added = ok(
            app, "webhook", "add", org.id, "--url", hooks.url, "--event", "appointment.booked"
        )
        assert added["events"] == ["appointment.booked"]
        assert ok(app, "webhook", "disable", added["id"])["enabled"] is False
        booked(post(app.test_client(), org, envelope(tool_call(**booking()))))
        assert ok(app, "worker", "--once") == {"attempts": 0}  # waits while disabled
        assert ok(app, "webhook", "enable", added["id"])["enabled"] is True

        rotated = ok(app, "webhook", "rotate-secret", added["id"], "--grace-minutes", "30")
        assert rotated["secret"] != added["secret"] and rotated["secret_rotating_until"]
        hooks.secrets[:] = [added["secret"], rotated["secret"]]
        assert ok(app, "worker", "--once") == {"attempts": 1}
        (event_id,) = set(hooks.ids())

        replayed = ok(app, "webhook", "replay", event_id)
        assert replayed == {"event_id": event_id, "endpoints": [added["id"]], "already_queued": []}
        assert ok(app, "worker", "--once") == {"attempts": 1}
        assert hooks.ids() == [event_id, event_id]
        assert all(r.verified_with == hooks.secrets for r in hooks.received)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("webhook", "add", 999999, "--url", "http://127.0.0.1:9/x"), "no organization"),
        (("webhook", "disable", 999999), "no endpoint with id 999999"),
        (("webhook", "deliveries", 999999), "no endpoint"),
        (("webhook", "replay", "msg_nope"), "no event with id msg_nope"),
        (("webhook", "add", "{org}", "--url", "ftp://example.com/x"), "http:// or https://"),
        (("webhook", "rotate-secret", 999999), "no endpoint"),
    ],
)
def test_operator_mistakes_are_one_clear_line_and_exit_1(app, org, args, message):
    result = run(app, *[str(a).replace("{org}", str(org.id)) for a in args])

    assert result.exit_code == 1
    assert message in json.loads(result.stderr)["error"]


def test_an_unknown_event_type_is_refused(app, org):
    result = run(app, "webhook", "add", org.id, "--url", "http://127.0.0.1:9/x", "--event", "x")
    assert result.exit_code == 2 and "appointment.booked" in result.output


def test_private_targets_are_refused_unless_allowed(database_url, org):
    strict = make_app(database_url)  # WEBHOOK_ALLOW_PRIVATE_TARGETS unset
    try:
        for url in ("http://127.0.0.1:8080/hooks", "http://10.0.0.7/hooks", "http://[::1]/x"):
            result = run(strict, "webhook", "add", org.id, "--url", url)
            assert result.exit_code == 1
            assert "private or internal" in json.loads(result.stderr)["error"]
    finally:
        strict.extensions[KEY].engine.dispose()


def test_a_replay_that_would_send_nothing_says_so(app, org, make_org, db):
    other = make_org(name="Other")
    with receiver() as hooks:
        mine = ok(app, "webhook", "add", org.id, "--url", hooks.url)
        theirs = ok(app, "webhook", "add", other.id, "--url", hooks.url)
        booked(post(app.test_client(), org, envelope(tool_call(**booking()))))
        (event_id,) = db.execute("SELECT event_id FROM outbox_events").fetchone()

        cross = run(app, "webhook", "replay", event_id, "--endpoint", theirs["id"])
        ok(app, "webhook", "disable", mine["id"])
        disabled = run(app, "webhook", "replay", event_id)

    assert cross.exit_code == 1 and "another organization" in json.loads(cross.stderr)["error"]
    assert disabled.exit_code == 1 and "no enabled endpoint" in json.loads(disabled.stderr)["error"]
