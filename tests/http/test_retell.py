"""Retell custom functions at POST /api/retell/ORG_ID/tools: the signature decides, nothing runs
without it; the realistic payloads book for the caller; a retry is answered from the ledger;
the exported definitions are what Retell's own SDK types describe."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
from retell.types.llm_response import GeneralToolCustomTool

from booking_service.use_cases.signatures import retell_signature_ok
from booking_service.voice.refusals import NEED_PROOF
from tests.support.helpers import cli, count, local_start, run_concurrently
from tests.support.platforms import (
    RETELL_KEY,
    enable_retell,
    post_retell,
    retell_body,
    retell_signature,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "retell"


@pytest.fixture
def retell_org(runtime, org):
    enable_retell(runtime, org)
    return org


def fixture(name: str) -> dict:
    body = json.loads((FIXTURES / name).read_text())
    body["args"]["start"] = local_start(days=7, hour=10)
    return body


def test_a_signed_phone_call_books_for_the_caller(client, retell_org, db):
    response = post_retell(client, retell_org, fixture("tool-call-phone.json"))

    assert response.status_code == 200
    answer = response.get_json()
    assert answer["status"] == "booked"
    assert answer["result"].startswith("You're booked for Maria Lopez")
    assert answer["appointment"]["reference"] in answer["result"]
    assert db.execute(
        "SELECT c.phone, a.vapi_call_id FROM appointments a JOIN contacts c ON c.id = a.contact_id"
    ).fetchall() == [("+14155550123", "Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6")]
    assert db.execute("SELECT platform FROM tool_calls").fetchall() == [("retell",)]


def test_a_web_call_without_a_number_needs_a_phone_or_email(client, retell_org, db):
    answer = post_retell(client, retell_org, fixture("tool-call-web.json")).get_json()

    assert answer["status"] == "error"
    assert count(db, "SELECT count(*) FROM appointments") == 0


def test_an_outbound_phone_calls_from_number_is_ours_not_the_callers(client, retell_org, db):
    body = retell_body(
        "findAppointments",
        {"phone": "+14155550123"},
        caller="+14155550123",
        call_id="out-1",
        direction="outbound",
    )

    answer = post_retell(client, retell_org, body).get_json()

    assert answer == {"result": NEED_PROOF, "status": "error"}


def _booking_body(call_id: str = "call-1") -> dict:
    return retell_body(
        "bookAppointment",
        {"name": "Maria", "start": local_start(days=7)},
        caller="+14155550123",
        call_id=call_id,
    )


def _bad_signature(kind: str, raw: bytes) -> str | None:
    now = int(time.time() * 1000)
    window = 5 * 60 * 1000
    return {
        "missing": None,
        "empty": "",
        "forged digest": f"v={now},d=" + "0" * 64,
        "other key": retell_signature(raw, "key_someone_else"),
        "stale": retell_signature(raw, ms=now - window - 1000),
        "from the future": retell_signature(raw, ms=now + window + 1000),
        # What the SDK's own sign() makes: a plain SHA-256, which its verify() rejects too.
        "sdk sign()": f"v={now},d="
        + hashlib.sha256(RETELL_KEY.encode() + raw + str(now).encode()).hexdigest(),
        "garbage": "v=abc,d=xyz",
        "seconds, not ms": retell_signature(raw, ms=now // 1000),
    }[kind]


BAD_SIGNATURES = (
    "missing",
    "empty",
    "forged digest",
    "other key",
    "stale",
    "from the future",
    "sdk sign()",
    "garbage",
    "seconds, not ms",
)


@pytest.mark.parametrize("kind", BAD_SIGNATURES)
def test_anything_but_a_fresh_signature_with_the_key_is_401_and_runs_nothing(
    client, retell_org, db, kind
):
    raw = json.dumps(_booking_body()).encode()

    response = post_retell(client, retell_org, raw, signature=_bad_signature(kind, raw))

    assert response.status_code == 401
    assert count(db, "SELECT count(*) FROM appointments") == 0
    assert count(db, "SELECT count(*) FROM tool_calls") == 0


def test_a_signature_of_another_body_is_refused(client, retell_org, db):
    signed = json.dumps(_booking_body("call-1")).encode()
    sent = json.dumps(_booking_body("call-2")).encode()

    response = post_retell(client, retell_org, sent, signature=retell_signature(signed))

    assert response.status_code == 401
    assert count(db, "SELECT count(*) FROM appointments") == 0


def test_an_organization_without_a_retell_key_or_unknown_is_401(client, org, db):
    raw = json.dumps(_booking_body()).encode()
    assert post_retell(client, org, raw).status_code == 401

    class Nobody:
        id = 999_999

    assert post_retell(client, Nobody, raw).status_code == 401
    assert count(db, "SELECT count(*) FROM tool_calls") == 0


def test_the_compact_reserialised_body_is_accepted_as_retell_used_to_sign(retell_org):
    raw = json.dumps(_booking_body(), indent=2).encode()
    compact = json.dumps(json.loads(raw), separators=(",", ":"), ensure_ascii=False).encode()
    now = int(time.time() * 1000)

    assert retell_signature_ok(raw, retell_signature(compact, ms=now), RETELL_KEY, now)
    assert not retell_signature_ok(raw, retell_signature(b"{}", ms=now), RETELL_KEY, now)


def test_a_retried_identical_request_books_once_and_gets_the_same_answer(client, retell_org, db):
    raw = json.dumps(_booking_body()).encode()

    first = post_retell(client, retell_org, raw)
    time.sleep(0.002)  # Retell signs the retry anew, with a later timestamp
    again = post_retell(client, retell_org, raw)

    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json()
    assert count(db, "SELECT count(*) FROM appointments") == 1


def test_concurrent_retries_book_once(client, retell_org, db):
    raw = json.dumps(_booking_body()).encode()
    app = client.application

    answers = run_concurrently(4, lambda i: post_retell(app.test_client(), retell_org, raw))

    assert len({json.dumps(a.get_json(), sort_keys=True) for a in answers}) == 1
    assert count(db, "SELECT count(*) FROM appointments") == 1


def test_the_same_arguments_in_another_call_are_a_new_invocation(client, retell_org, db):
    # The same caller asks again in a new call: a new key, and the booking they already hold
    # comes back as theirs (nothing new is booked).
    first = post_retell(client, retell_org, _booking_body("call-1")).get_json()
    second = post_retell(client, retell_org, _booking_body("call-2")).get_json()

    assert first["status"] == second["status"] == "booked"
    assert second["alreadyBooked"] is True
    assert count(db, "SELECT count(*) FROM tool_calls") == 2
    assert count(db, "SELECT count(*) FROM appointments") == 1


def test_an_unreadable_body_is_400_after_the_signature(client, retell_org):
    assert post_retell(client, retell_org, b"not json").status_code == 400
    assert post_retell(client, retell_org, b"not json", signature=None).status_code == 401


def test_the_cli_stores_the_key_sealed_from_standard_input(app, org, db):
    printed = cli(app, "org", "retell", str(org.id), "--api-key", "-", input=RETELL_KEY + "\n")

    assert RETELL_KEY not in printed
    assert json.loads(printed)["retell_api_key"] == "set"
    (stored,) = db.execute("SELECT retell_api_key FROM voice_platform_settings").fetchone()
    assert stored and RETELL_KEY not in stored
    client = app.test_client()
    assert post_retell(client, org, _booking_body()).status_code == 200

    cli(app, "org", "retell", str(org.id), "--disable")
    assert post_retell(client, org, _booking_body("call-2")).status_code == 401


def test_the_exported_definitions_are_retells_custom_tools(app):
    url = "https://booking.example/api/retell/7/tools"
    definitions = json.loads(cli(app, "retell", "tools", "--url", url))

    assert {d["name"] for d in definitions} == {
        "checkAvailability",
        "bookAppointment",
        "findAppointments",
        "cancelAppointment",
        "rescheduleAppointment",
        "joinWaitlist",
    }
    for definition in definitions:
        tool = GeneralToolCustomTool.model_validate(definition)
        assert not tool.model_extra, tool.model_extra  # every field is one Retell knows
        assert tool.type == "custom" and tool.url == url and tool.method == "POST"
        assert tool.timeout_ms == 20000 and tool.args_at_root is False
        assert tool.speak_during_execution and tool.execution_message_description
        assert tool.parameters is not None and tool.parameters.type == "object"


def test_unreadable_arguments_are_asked_for_again(client, retell_org, db):
    body = {**_booking_body(), "args": "{not json"}

    answer = post_retell(client, retell_org, body).get_json()

    assert answer["status"] == "error" and "could not read the details" in answer["result"]
    assert count(db, "SELECT count(*) FROM appointments") == 0


def test_the_cli_wants_a_key_or_disable_and_names_an_unknown_organization(app, org):
    assert "--api-key is required" in cli(app, "org", "retell", str(org.id), ok=False)
    assert "--api-key is required" in cli(
        app, "org", "retell", str(org.id), "--api-key", "-", input="\n", ok=False
    )
    assert "no organization with id 424242" in cli(
        app, "org", "retell", "424242", "--api-key", "k", ok=False
    )
    shown = json.loads(cli(app, "org", "update", str(org.id), "--keep-recordings"))
    assert shown["keep_recordings"] is True
