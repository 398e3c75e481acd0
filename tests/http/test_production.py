"""Production behaviour: per-call change limit, secret rotation grace, proxy, metrics, logs."""

from __future__ import annotations

import json
import logging

from booking_service.runtime.logging_setup import JsonFormatter, log_context
from tests.support.app import make_app
from tests.support.helpers import (
    booked,
    booking,
    count,
    envelope,
    error_of,
    local_start,
    post,
    tool_call,
)


def test_a_call_stuck_in_a_loop_is_handed_over_after_the_limit(database_url, org, db):
    app = make_app(database_url, MAX_CHANGES_PER_CALL=3)
    client = app.test_client()
    try:
        answers = [
            post(
                client,
                org,
                envelope(
                    tool_call(**booking(start=local_start(days=5, hour=9 + i))),
                    call_id="looping-call",
                ),
            )
            for i in range(5)
        ]
        other_call = post(
            client,
            org,
            envelope(tool_call(**booking(start=local_start(days=6))), call_id="another-call"),
        )
    finally:
        app.extensions["booking_service"].engine.dispose()

    for response in answers[:3]:
        booked(response)
    for response in answers[3:]:
        assert "transfer the caller to a member of staff" in error_of(response)
    booked(other_call)
    assert count(db, "SELECT count(*) FROM appointments") == 4


def test_client_sent_forwarded_for_is_not_believed_beyond_one_hop(client):
    # The real client is what the one trusted proxy appended, i.e. the last address.
    response = client.get(
        "/metrics",
        headers={"X-Forwarded-For": "127.0.0.1, 203.0.113.9"},
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
    )

    assert response.status_code == 404


def test_a_forwarded_for_from_a_stranger_does_not_open_metrics(client):
    # gunicorn reachable beyond loopback: the socket peer decides, not what it claims.
    response = client.get(
        "/metrics",
        headers={"X-Forwarded-For": "127.0.0.1"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )

    assert response.status_code == 404


def _metric(client, line_start: str) -> float:
    text = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).get_data(as_text=True)
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(line_start)]
    return values[0] if values else 0.0


def test_metrics_are_served_to_loopback_and_count_tool_calls(client, org):
    # The registry is shared by every test of the process: compare before and after.
    counted = 'booking_tool_calls_total{outcome="ok",tool="bookAppointment"}'
    before = _metric(client, counted)
    booked(post(client, org, envelope(tool_call(**booking()))))
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    text = response.get_data(as_text=True)

    assert response.status_code == 200
    assert _metric(client, counted) == before + 1
    assert counted in text
    assert 'booking_contact_resolutions_total{path="phone_inserted"}' in text
    assert "booking_request_duration_seconds_bucket" in text


def test_metrics_token_is_required_when_configured(database_url):
    app = make_app(database_url, METRICS_TOKEN="s3cret-scrape")
    try:
        client = app.test_client()
        local = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})
        good = client.get(
            "/metrics",
            headers={"Authorization": "Bearer s3cret-scrape"},
            environ_base={"REMOTE_ADDR": "198.51.100.7"},
        )
    finally:
        app.extensions["booking_service"].engine.dispose()

    assert local.status_code == 404
    assert good.status_code == 200


def test_json_log_lines_carry_the_ids_outcome_and_duration():
    record = logging.LogRecord(
        "booking_service.voice.pipeline",
        logging.INFO,
        __file__,
        1,
        "tool call answered: outcome=%s",
        ("ok",),
        None,
    )
    record.outcome, record.duration_ms = "ok", 12.5
    from booking_service.runtime.logging_setup import ContextFilter

    with log_context(
        request_id="r1", org_id=7, call_id="c1", tool_call_id="t1", tool="bookAppointment"
    ):
        ContextFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))

    assert {
        k: line[k]
        for k in (
            "level",
            "logger",
            "request_id",
            "org_id",
            "call_id",
            "tool_call_id",
            "tool",
            "outcome",
            "duration_ms",
        )
    } == {
        "level": "INFO",
        "logger": "booking_service.voice.pipeline",
        "request_id": "r1",
        "org_id": "7",
        "call_id": "c1",
        "tool_call_id": "t1",
        "tool": "bookAppointment",
        "outcome": "ok",
        "duration_ms": 12.5,
    }
    assert "timestamp" in line


def test_a_json_line_is_written_whatever_text_it_carries():
    """orjson encodes the lines and refuses some text (a lone surrogate, which a caller's
    JSON may carry, and integers past 64 bits): the standard library writes those lines
    instead, escaped to ASCII so that a strict UTF-8 stream takes them. Other text is
    written as UTF-8, as it is."""

    def line(*args, **extra) -> str:
        record = logging.LogRecord(
            "booking_service.voice.pipeline", logging.INFO, __file__, 1, *args, None
        )
        record.__dict__.update(extra)
        return JsonFormatter().format(record)

    surrogate = line("%s", ("\ud800 José",))
    assert json.loads(surrogate)["message"] == "\ud800 José"
    surrogate.encode("utf-8")  # strict: raises on an unescaped surrogate
    assert json.loads(line("big", (), big=2**70))["big"] == 2**70
    assert '"message":"José"' in line("José", ())


def test_rotation_with_grace_keeps_both_secrets_working_until_it_ends(client, org, runtime, db):
    from booking_service.use_cases.orgs import rotate_secret

    new_secret = rotate_secret(runtime.uow(), org.id, grace_minutes=60)
    body = envelope(tool_call(**booking()))
    old = client.post(
        "/api/vapi/tools", json=body, headers={"Authorization": f"Bearer {org.secret}"}
    )
    new = client.post(
        "/api/vapi/tools", json=body, headers={"Authorization": f"Bearer {new_secret}"}
    )
    assert old.status_code == 200 and new.status_code == 200

    db.execute("UPDATE organizations SET previous_secret_expires_at = now() - interval '1 second'")
    expired = client.post(
        "/api/vapi/tools", json=body, headers={"Authorization": f"Bearer {org.secret}"}
    )
    assert expired.status_code == 401

    newest = rotate_secret(runtime.uow(), org.id)  # no grace: the previous one stops at once
    again = client.post(
        "/api/vapi/tools", json=body, headers={"Authorization": f"Bearer {new_secret}"}
    )
    assert again.status_code == 401
    assert newest != new_secret
