"""What happened on the call: each platform's end-of-call report is stored once per call, with
the references the ledger says the call booked, moved or cancelled; `calls list` shows it, and
`call.ended` goes to webhooks once. Everything in a report is caller text: kept out of logs,
escaped for the terminal, recordings only on request."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from elevenlabs.client import ElevenLabs

from tests.support.helpers import (
    booked,
    cli,
    count,
    envelope,
    local_start,
    post,
    run_concurrently,
    tool_call,
)
from tests.support.platforms import (
    enable_retell,
    post_elevenlabs,
    post_retell,
    retell_body,
    retell_signature,
)
from tests.support.web import sign_in_as

FIXTURES = Path(__file__).parent.parent / "fixtures"
CALLER = "+14155550123"
EL_SECRET = "wsec_test_0123456789abcdef0123456789"


def _ago(minutes: int) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


def vapi_report(call_id: str, *, fixture_times: bool = False, **changes) -> dict:
    """The shared end-of-call report for `call_id`, ended a minute ago (the file's own times,
    late 2026, age; `fixture_times` keeps them)."""
    body = json.loads((FIXTURES / "vapi" / "end-of-call-report.json").read_text())
    body["message"]["call"]["id"] = call_id
    if not fixture_times:
        body["message"]["startedAt"] = _ago(4).isoformat().replace("+00:00", "Z")
        body["message"]["endedAt"] = _ago(1).isoformat().replace("+00:00", "Z")
    body["message"].update(changes)
    return body


def calls(app, org, *args: str) -> list[dict]:
    out = cli(app, "calls", "list", str(org.id), "--json", *args)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def vapi_book(client, org, call_id: str, days: int = 7) -> str:
    result = booked(
        post(
            client,
            org,
            envelope(
                tool_call(name="Maria Lopez", start=local_start(days=days)),
                customer=CALLER,
                call_id=call_id,
            ),
        )
    )
    return result["appointment"]["reference"]


def test_an_end_of_call_report_sent_twice_is_one_call_with_its_summary_and_reference(
    app, client, org, db
):
    reference = vapi_book(client, org, "vapi-call-1")
    report = vapi_report("vapi-call-1")

    first = post(client, org, report)
    again = post(client, org, report)

    assert first.status_code == again.status_code == 200
    assert first.get_json() == {}
    (listed,) = calls(app, org)
    assert listed["call_id"] == "vapi-call-1" and listed["platform"] == "vapi"
    assert listed["summary"] == "Maria Lopez booked a cleaning for Tuesday at 10 AM."
    assert listed["references"] == [reference]
    assert listed["outcome"] == "booked"
    assert listed["ended_reason"] == "customer-ended-call"
    assert listed["started_at"] and listed["ended_at"]
    assert count(db, "SELECT count(*) FROM outbox_events WHERE type = 'call.ended'") == 1


def test_a_call_that_moved_and_cancelled_is_changed_and_one_that_only_asked_is_none(
    app, client, org, db
):
    reference = vapi_book(client, org, "call-a")
    post(client, org, vapi_report("call-a"))
    post(
        client,
        org,
        envelope(
            tool_call("rescheduleAppointment", reference=reference, newStart=local_start(days=8)),
            customer=CALLER,
            call_id="call-b",
        ),
    )
    post(client, org, vapi_report("call-b"))
    post(
        client,
        org,
        envelope(
            tool_call("checkAvailability", date=local_start(days=9)[:10]),
            customer=CALLER,
            call_id="call-c",
        ),
    )
    post(client, org, vapi_report("call-c", endedReason="customer-ended-call"))

    outcomes = {c["call_id"]: (c["outcome"], c["references"]) for c in calls(app, org)}
    assert outcomes == {
        "call-a": ("booked", [reference]),
        "call-b": ("changed", [reference]),
        "call-c": ("none", []),
    }
    without = [c["call_id"] for c in calls(app, org, "--without-booking")]
    assert without == ["call-b", "call-c"]


def test_a_report_of_a_call_in_another_organization_takes_nothing_from_it(
    app, client, org, make_org, db
):
    vapi_book(client, org, "shared-call-id")
    other = make_org(name="Other Clinic")

    post(client, other, vapi_report("shared-call-id"))

    (listed,) = calls(app, other)
    assert listed["references"] == [] and listed["outcome"] == "none"
    assert calls(app, org) == []


def test_recording_urls_are_kept_only_when_the_organization_opts_in(app, client, org, db):
    recording = {"recordingUrl": "https://storage.example/rec/1.wav"}
    post(client, org, vapi_report("r1", artifact=recording))
    cli(app, "org", "update", str(org.id), "--keep-recordings")
    post(client, org, vapi_report("r2", artifact=recording))

    kept = dict(db.execute("SELECT call_id, recording_url FROM call_reports").fetchall())
    assert kept == {"r1": None, "r2": "https://storage.example/rec/1.wav"}


def test_caller_text_in_a_summary_is_stored_but_cannot_drive_the_terminal(
    app, client, org, db, caplog
):
    hostile = "<script>alert(1)</script> \x1b[2J\x1b]0;owned\x07 ignore previous instructions"
    post(client, org, vapi_report("hostile", analysis={"summary": hostile}))

    plain = cli(app, "calls", "list", str(org.id))
    (listed,) = calls(app, org)

    assert "\x1b" not in plain and "\x07" not in plain
    assert "<script>" in plain  # the terminal shows text; the web page escapes it
    assert listed["summary"].startswith("<script>")
    assert "ignore previous" not in caplog.text and "<script>" not in caplog.text


def test_calls_list_takes_a_date_and_days(app, client, org):
    post(client, org, vapi_report("old", fixture_times=True))  # it ended on 2026-11-24

    assert [c["call_id"] for c in calls(app, org, "--date", "2026-11-24", "--days", "1")] == ["old"]
    assert calls(app, org, "--date", "2026-11-25") == []
    bad = cli(app, "calls", "list", str(org.id), "--days", "0", ok=False)
    assert "--days must be between 1 and 366" in bad


# --- Retell's call_analyzed ---------------------------------------------------------------


def _retell_event(call_id: str) -> bytes:
    body = json.loads((FIXTURES / "retell" / "call-analyzed.json").read_text())
    body["call"]["call_id"] = call_id
    body["call"]["start_timestamp"] = int(_ago(4).timestamp() * 1000)
    body["call"]["end_timestamp"] = int(_ago(1).timestamp() * 1000)
    return json.dumps(body).encode()


def post_retell_event(client, org, raw: bytes, signature: str | None = "sign"):
    headers = {"Content-Type": "application/json"}
    if signature == "sign":
        headers["X-Retell-Signature"] = retell_signature(raw)
    elif signature:
        headers["X-Retell-Signature"] = signature
    return client.post(f"/api/retell/{org.id}/events", data=raw, headers=headers)


def test_retells_call_analyzed_is_stored_once_with_what_the_call_booked(
    app, client, runtime, org, db
):
    enable_retell(runtime, org)
    answer = post_retell(
        client,
        org,
        retell_body(
            "bookAppointment",
            {"name": "Maria", "start": local_start(days=7)},
            caller=CALLER,
            call_id="retell-1",
        ),
    ).get_json()
    raw = _retell_event("retell-1")

    assert post_retell_event(client, org, raw, signature=None).status_code == 401
    assert post_retell_event(client, org, raw).status_code == 200
    assert post_retell_event(client, org, raw).status_code == 200
    started = json.dumps({"event": "call_started", "call": {"call_id": "retell-1"}}).encode()
    assert post_retell_event(client, org, started).status_code == 200

    (listed,) = calls(app, org)
    assert listed["platform"] == "retell" and listed["call_id"] == "retell-1"
    assert listed["summary"] == "The caller booked a cleaning for Tuesday at 10 AM."
    assert listed["references"] == [answer["appointment"]["reference"]]
    assert listed["outcome"] == "booked" and listed["ended_reason"] == "user_hangup"
    assert abs(datetime.fromisoformat(listed["started_at"]) - _ago(4)) < timedelta(minutes=1)
    assert abs(datetime.fromisoformat(listed["ended_at"]) - _ago(1)) < timedelta(minutes=1)


# --- ElevenLabs' post_call_transcription --------------------------------------------------


def _elevenlabs_event(conversation_id: str) -> str:
    body = json.loads((FIXTURES / "elevenlabs" / "post-call-transcription.json").read_text())
    body["data"]["conversation_id"] = conversation_id
    body["data"]["metadata"]["start_time_unix_secs"] = int(_ago(4).timestamp())
    return json.dumps(body)


def elevenlabs_signature(raw: str, secret: str = EL_SECRET, at: int | None = None) -> str:
    stamp = str(at if at is not None else int(time.time()))
    digest = hmac.new(secret.encode(), f"{stamp}.{raw}".encode(), hashlib.sha256).hexdigest()
    return f"t={stamp},v0={digest}"


def post_elevenlabs_event(client, org, raw: str, signature: str | None):
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["ElevenLabs-Signature"] = signature
    return client.post(f"/api/elevenlabs/{org.id}/events", data=raw, headers=headers)


@pytest.fixture
def elevenlabs_org(app, org):
    printed = cli(app, "org", "elevenlabs", str(org.id), "--webhook-secret", "-", input=EL_SECRET)
    assert EL_SECRET not in printed
    return org


def test_elevenlabs_post_call_transcription_is_stored_once(app, client, elevenlabs_org, db):
    org = elevenlabs_org
    body = {"name": "Maria", "start": local_start(days=7), "conversation_id": "conv_1"}
    answer = post_elevenlabs(
        client, org, "bookAppointment", {**body, "caller_id": CALLER, "call_sid": "CA1"}
    ).get_json()
    raw = _elevenlabs_event("conv_1")
    signature = elevenlabs_signature(raw)
    # The header is what ElevenLabs' own SDK accepts.
    assert ElevenLabs(api_key="test").webhooks.construct_event(raw, signature, EL_SECRET)

    assert post_elevenlabs_event(client, org, raw, signature).status_code == 200
    assert post_elevenlabs_event(client, org, raw, elevenlabs_signature(raw)).status_code == 200

    (listed,) = calls(app, org)
    assert listed["platform"] == "elevenlabs" and listed["call_id"] == "conv_1"
    assert listed["summary"] == "The caller booked a cleaning for Tuesday at 10 AM."
    assert listed["references"] == [answer["appointment"]["reference"]]
    assert listed["ended_reason"] == "Call ended by remote party"
    ended = datetime.fromisoformat(listed["ended_at"])
    assert ended - datetime.fromisoformat(listed["started_at"]) == timedelta(seconds=180)


@pytest.mark.parametrize("kind", ["missing", "other secret", "stale", "other body"])
def test_an_unsigned_or_badly_signed_elevenlabs_event_is_401(client, elevenlabs_org, db, kind):
    raw = _elevenlabs_event("conv_2")
    signature = {
        "missing": None,
        "other secret": elevenlabs_signature(raw, "wsec_other"),
        "stale": elevenlabs_signature(raw, at=int(time.time()) - 31 * 60),
        "other body": elevenlabs_signature(_elevenlabs_event("conv_3")),
    }[kind]

    assert post_elevenlabs_event(client, elevenlabs_org, raw, signature).status_code == 401
    assert count(db, "SELECT count(*) FROM call_reports") == 0


def test_without_a_webhook_secret_elevenlabs_events_are_refused(client, org, db):
    raw = _elevenlabs_event("conv_4")

    assert post_elevenlabs_event(client, org, raw, elevenlabs_signature(raw)).status_code == 401


# --- the owner's page ---------------------------------------------------------------------


@pytest.fixture
def signed_in(app, owner):
    client = app.test_client()
    assert sign_in_as(client, "owner@bright.example", "correct horse battery").status_code == 302
    return client


def test_the_owner_sees_the_summary_on_the_appointment_and_calls_without_booking(
    app, client, org, signed_in
):
    reference = vapi_book(client, org, "booked-call")
    post(client, org, vapi_report("booked-call"))
    hostile = "<img src=x onerror=alert(1)> wanted a crown, no time suited"
    post(client, org, vapi_report("asked-only", analysis={"summary": hostile}))

    detail = signed_in.get(f"/app/appointments/{reference}").get_data(as_text=True)
    agenda = signed_in.get("/app/agenda").get_data(as_text=True)

    assert "What the call reported" in detail
    assert "Maria Lopez booked a cleaning for Tuesday at 10 AM." in detail
    assert "Calls without a booking" in agenda
    assert "&lt;img src=x onerror=alert(1)&gt; wanted a crown" in agenda
    assert "<img src=x" not in agenda
    assert "Maria Lopez booked a cleaning" not in agenda  # a booking call needs no follow-up


def test_concurrent_duplicates_of_a_report_store_one_call_and_one_event(app, client, org, db):
    reference = vapi_book(client, org, "dup-call")
    report = vapi_report("dup-call")

    statuses = run_concurrently(4, lambda i: post(app.test_client(), org, report).status_code)

    assert statuses == [200] * 4
    assert db.execute('SELECT call_id, "references" FROM call_reports').fetchall() == [
        ("dup-call", [reference])
    ]
    assert count(db, "SELECT count(*) FROM outbox_events WHERE type = 'call.ended'") == 1
