"""ElevenLabs server tools at POST /api/elevenlabs/tools/TOOL_NAME: the organization's bearer
secret decides; the caller is verified only on a phone call (caller_id and call_sid); the
exported configs are what the ElevenLabs SDK's types describe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from elevenlabs.types.tool_request_model_tool_config import ToolRequestModelToolConfig_Webhook

from booking_service.voice.refusals import NEED_PROOF
from tests.support.helpers import cli, count, local_start
from tests.support.platforms import elevenlabs_body, post_elevenlabs

FIXTURES = Path(__file__).parent.parent / "fixtures" / "elevenlabs"


def fixture(name: str) -> dict:
    body = json.loads((FIXTURES / name).read_text())
    body["start"] = local_start(days=7, hour=10)
    return body


def test_a_phone_call_books_for_the_caller(client, org, db):
    response = post_elevenlabs(client, org, "bookAppointment", fixture("book-phone.json"))

    assert response.status_code == 200
    answer = response.get_json()
    assert answer["status"] == "booked"
    assert answer["result"].startswith("You're booked for Maria Lopez")
    assert db.execute(
        "SELECT c.phone, a.vapi_call_id FROM appointments a JOIN contacts c ON c.id = a.contact_id"
    ).fetchall() == [("+14155550123", "conv_01jz8k3m4n5p6q7r8s9t0v1w2x")]
    assert db.execute("SELECT platform FROM tool_calls").fetchall() == [("elevenlabs",)]


def test_a_web_conversation_without_a_number_needs_a_phone_or_email(client, org, db):
    answer = post_elevenlabs(client, org, "bookAppointment", fixture("book-web.json")).get_json()

    assert answer["status"] == "error"
    assert count(db, "SELECT count(*) FROM appointments") == 0


def test_a_caller_id_without_a_call_sid_is_a_claim(client, org, db):
    body = elevenlabs_body({}, caller="+14155550123", call_id="conv_1", phone_call=False)
    assert "call_sid" not in body

    answer = post_elevenlabs(client, org, "findAppointments", {**body, "phone": "+14155550123"})

    assert answer.get_json() == {"result": NEED_PROOF, "status": "error"}


@pytest.mark.parametrize("secret", ["", "bks_1_wrongwrongwrongwrongwrong", "Basic abc"])
def test_a_wrong_or_missing_secret_is_401_and_runs_nothing(client, org, db, secret):
    body = fixture("book-phone.json")

    response = post_elevenlabs(client, org, "bookAppointment", body, secret=secret)

    assert response.status_code == 401
    assert count(db, "SELECT count(*) FROM appointments") == 0
    assert count(db, "SELECT count(*) FROM tool_calls") == 0


def test_another_organizations_secret_books_for_that_organization_only(client, org, make_org, db):
    other = make_org(name="Other Clinic")
    body = fixture("book-phone.json")

    post_elevenlabs(client, other, "bookAppointment", body)

    assert db.execute("SELECT org_id FROM appointments").fetchall() == [(other.id,)]


def test_a_repeated_request_is_answered_from_the_ledger(client, org, db):
    body = fixture("book-phone.json")

    first = post_elevenlabs(client, org, "bookAppointment", body).get_json()
    again = post_elevenlabs(client, org, "bookAppointment", body).get_json()

    assert first == again
    assert count(db, "SELECT count(*) FROM appointments") == 1
    assert count(db, "SELECT count(*) FROM tool_calls") == 1


def test_an_unknown_tool_names_the_tools(client, org):
    answer = post_elevenlabs(client, org, "deleteEverything", {"conversation_id": "c"}).get_json()

    assert answer["status"] == "error" and "bookAppointment" in answer["result"]


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"text"'])
def test_a_body_that_is_not_an_object_is_400(client, org, raw):
    assert post_elevenlabs(client, org, "bookAppointment", raw).status_code == 400


def test_the_exported_configs_are_elevenlabs_webhook_tools(app):
    url = "https://booking.example/api/elevenlabs/tools"
    configs = json.loads(cli(app, "elevenlabs", "tools", "--url", url, "--secret-id", "sec_1"))

    assert [c["name"] for c in configs] == [
        "checkAvailability",
        "bookAppointment",
        "findAppointments",
        "cancelAppointment",
        "rescheduleAppointment",
        "joinWaitlist",
    ]
    for config in configs:
        tool = ToolRequestModelToolConfig_Webhook.model_validate(config)
        assert tool.api_schema.url == f"{url}/{tool.name}"
        assert tool.response_timeout_secs == 20
        assert tool.tool_error_handling_mode == "passthrough"
        assert tool.pre_tool_speech == "force"
        # Every field is one the SDK knows (the tool's and its api_schema's).
        assert not tool.model_extra and not tool.api_schema.model_extra
        headers = config["api_schema"]["request_headers"]
        assert headers == {"Authorization": {"secret_id": "sec_1"}}
        body = config["api_schema"]["request_body_schema"]
        for name, prop in body["properties"].items():
            # ElevenLabs' literal properties know no JSON-Schema format, lengths or bounds.
            assert set(prop) <= {"type", "description", "enum", "dynamic_variable"}, name
            assert prop["type"] in {"string", "integer", "number", "boolean"}
            # Each takes its value from exactly one source.
            assert ("description" in prop) != ("dynamic_variable" in prop), name
        assert body["properties"]["caller_id"]["dynamic_variable"] == "system__caller_id"
        assert body["properties"]["call_sid"]["dynamic_variable"] == "system__call_sid"
        assert body["properties"]["conversation_id"]["dynamic_variable"] == (
            "system__conversation_id"
        )
    book = next(c for c in configs if c["name"] == "bookAppointment")
    start = book["api_schema"]["request_body_schema"]["properties"]["start"]
    assert "ISO 8601" in start["description"] and "at most 64" in start["description"]
