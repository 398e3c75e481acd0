"""VAPI's assistant-request: the organization's assistant with the business's own date and
time, and the verified caller's first name and next appointment, for nobody else. The exported
tools say "still checking" when slow and a fixed line when the request fails."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from vapi.types import ServerMessageResponseAssistantRequest

from booking_service.voice.vapi.definitions import tool_definitions
from tests.support.helpers import booked, cli, envelope, local_start, post, tool_call

FIXTURE = Path(__file__).parent.parent / "fixtures" / "vapi" / "assistant-request.json"
CALLER = "+14155550123"


def request_body(customer: str | None = CALLER, call_type: str = "inboundPhoneCall") -> dict:
    body = json.loads(FIXTURE.read_text())
    message = body["message"]
    message["call"]["type"] = call_type
    if customer is None:
        message.pop("customer", None)
        message["call"].pop("customer", None)
    else:
        message["customer"] = {"number": customer}
    return body


def assistant(client, org, body) -> dict:
    response = post(client, org, body)
    assert response.status_code == 200
    answer = response.get_json()
    ServerMessageResponseAssistantRequest.model_validate(answer)
    return answer


def test_without_an_assistant_set_the_answer_is_empty(client, org):
    assert assistant(client, org, request_body()) == {}


def test_the_answer_carries_the_local_date_and_the_verified_callers_next_appointment(
    app, client, org
):
    cli(app, "org", "vapi", str(org.id), "--assistant-id", "asst_front_desk")
    result = booked(
        post(
            client,
            org,
            envelope(tool_call(name="Maria Lopez", start=local_start(days=3)), customer=CALLER),
        )
    )
    appointment = result["appointment"]

    answer = assistant(client, org, request_body())

    assert answer["assistantId"] == "asst_front_desk"
    values = answer["assistantOverrides"]["variableValues"]
    local = datetime.now(ZoneInfo("America/New_York"))
    assert values["today"] in {local.date().isoformat()}
    assert values["weekday"] == f"{local:%A}"
    assert values["businessName"] == "Bright Smile Dental"
    assert values["timezone"] == "America/New_York"
    assert values["localTime"].endswith(("AM", "PM"))
    assert values["callerFirstName"] == "Maria"
    assert values["nextAppointment"] == appointment["spoken"].split(" until ")[0]
    assert values["nextAppointmentReference"] == appointment["reference"]


def test_a_web_call_or_another_number_learns_nothing_about_the_caller(app, client, org):
    cli(app, "org", "vapi", str(org.id), "--assistant-id", "asst_front_desk")
    booked(post(client, org, envelope(tool_call(name="Maria Lopez", start=local_start()))))

    for body in (
        request_body(call_type="webCall"),
        request_body(customer="+14155550999"),
        request_body(customer=None),
    ):
        values = assistant(client, org, body)["assistantOverrides"]["variableValues"]
        assert values["callerFirstName"] == values["nextAppointment"] == ""
        assert values["nextAppointmentReference"] == ""
        assert values["today"] and values["businessName"]


def test_the_assistant_can_be_unset(app, client, org):
    cli(app, "org", "vapi", str(org.id), "--assistant-id", "asst_1")
    cli(app, "org", "vapi", str(org.id), "--disable")

    assert assistant(client, org, request_body()) == {}


def test_exported_tools_say_still_checking_and_a_fixed_failure_line():
    for definition in tool_definitions("https://booking.example/api/vapi/tools"):
        kinds = {m["type"]: m for m in definition["messages"]}
        assert set(kinds) == {"request-start", "request-response-delayed", "request-failed"}
        assert kinds["request-response-delayed"]["timingMilliseconds"] == 4000
        assert "nothing was changed" in kinds["request-failed"]["content"]
