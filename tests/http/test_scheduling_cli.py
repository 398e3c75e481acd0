"""The scheduling CLI and `vapi tools` (generated from the argument schemas)."""

from __future__ import annotations

import json

import jsonschema
import pytest

from booking_service.voice.tools import TOOLS
from tests.support.helpers import booking, business_day, envelope, error_of, post, tool_call


def invoke(app, *args):
    return app.test_cli_runner().invoke(args=[str(a) for a in args])


def test_resource_add_and_list_with_split_hours(app, org):
    added = invoke(
        app,
        "resource",
        "add",
        org.id,
        "--name",
        "Dr. Patel",
        "--hours",
        "mon-fri 09:00-12:00,13:00-17:00",
        "--hours",
        "sat 10:00-14:00",
    )
    listed = invoke(app, "resource", "list", org.id)

    assert added.exit_code == 0, added.stderr
    resource = json.loads(added.stdout)
    assert resource["hours"]["mon"] == ["09:00-12:00", "13:00-17:00"]
    assert resource["hours"]["sat"] == ["10:00-14:00"]
    assert "sun" not in resource["hours"]
    names = [r["name"] for r in json.loads(listed.stdout)]
    assert names == ["Main", "Dr. Patel"]


@pytest.mark.parametrize(
    ("hours", "words"),
    [
        ("someday 09:00-17:00", "bad day"),
        ("mon 17:00-09:00", "closes before it opens"),
        ("mon 09:00-12:00,11:00-13:00", "overlap"),
        ("mon 9am-5pm", "bad time range"),
        ("mon", "bad hours"),
    ],
)
def test_resource_add_rejects_bad_hours_clearly(app, org, hours, words):
    result = invoke(app, "resource", "add", org.id, "--name", "X", "--hours", hours)

    assert result.exit_code == 1
    assert words in result.stderr


def test_resource_names_are_unique_per_organization_ignoring_case(app, org):
    result = invoke(app, "resource", "add", org.id, "--name", "main", "--hours", "mon 09:00-10:00")

    assert result.exit_code == 1
    assert "already exists" in result.stderr


def test_resource_closed_day_is_refused_for_booking(app, org, client):
    resource_id = json.loads(invoke(app, "resource", "list", org.id).stdout)[0]["id"]
    day = business_day(days=5)
    closed = invoke(app, "resource", "closed", resource_id, "--date", day.isoformat())
    message = error_of(post(client, org, envelope(tool_call(**booking(start=f"{day}T10:00")))))

    assert closed.exit_code == 0 and json.loads(closed.stdout)["closed"] is True
    assert "We are closed on" in message


def test_service_add_and_org_update(app, org):
    service = invoke(app, "service", "add", org.id, "--name", "Cleaning", "--minutes", 60)
    updated = invoke(
        app,
        "org",
        "update",
        org.id,
        "--slot-minutes",
        30,
        "--min-notice-minutes",
        120,
        "--horizon-days",
        90,
        "--buffer-minutes",
        10,
    )
    bad = invoke(app, "org", "update", org.id, "--slot-minutes", 1)

    assert json.loads(service.stdout)["minutes"] == 60
    rules = json.loads(updated.stdout)
    assert (
        rules["slot_minutes"],
        rules["min_notice_minutes"],
        rules["horizon_days"],
        rules["buffer_minutes"],
    ) == (30, 120, 90, 10)
    assert bad.exit_code == 1 and "between 5 and 240" in bad.stderr


def test_vapi_tools_is_valid_json_schema_for_every_dispatched_tool(app):
    result = invoke(app, "vapi", "tools", "--url", "https://clinic.example/api/vapi/tools")
    definitions = json.loads(result.stdout)

    assert [d["function"]["name"] for d in definitions] == list(TOOLS)
    for definition in definitions:
        parameters = definition["function"]["parameters"]
        jsonschema.Draft202012Validator.check_schema(parameters)
        assert definition["server"]["url"] == "https://clinic.example/api/vapi/tools"
        assert definition["messages"][0]["type"] == "request-start"
        assert definition["async"] is False
    book = next(d for d in definitions if d["function"]["name"] == "bookAppointment")
    assert book["function"]["parameters"]["required"] == ["name", "start"]
    availability = next(d for d in definitions if d["function"]["name"] == "checkAvailability")
    assert "from" in availability["function"]["parameters"]["properties"]


def test_generated_schemas_accept_what_the_webhook_accepts(app, org, client):
    definitions = json.loads(invoke(app, "vapi", "tools", "--url", "https://x/y").stdout)
    schema = next(d for d in definitions if d["function"]["name"] == "bookAppointment")
    arguments = booking(durationMinutes=45, service="cleaning", email="a@example.com")

    jsonschema.validate(arguments, schema["function"]["parameters"])
    response = post(client, org, envelope(tool_call(**arguments)))
    assert "result" in response.get_json()["results"][0]
