"""The contract with VAPI, checked against the official Vapi server SDK (`vapi-server-sdk`).

Three sides of it: the tool definitions `flask --app wsgi vapi tools` prints must be what VAPI's
create-tool API takes (`CreateFunctionToolDto`); the shared VAPI payloads the suite replays must
be what VAPI sends (`ServerMessageToolCalls`, `Call`, ...); and every answer the suite gets
from the webhook is validated as a `ServerMessageResponseToolCalls` by `CheckedClient` in
tests/support/app.py, which the last tests here prove can fail.

The SDK's models allow unknown fields (`extra="allow"`), so on its own a misspelt key would pass:
the definitions test also refuses any field the SDK does not know.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pydantic
import pytest
from flask import Flask, request
from vapi.tools.types.create_tools_request import CreateToolsRequest, CreateToolsRequest_Function
from vapi.types import (
    Call,
    CreateFunctionToolDto,
    ServerMessageAssistantRequest,
    ServerMessageEndOfCallReport,
    ServerMessageStatusUpdate,
    ServerMessageToolCalls,
    ServerMessageToolCallsToolWithToolCallListItem_Function,
    ToolCall,
)

from booking_service.voice.tools import TOOLS
from tests.support.app import CheckedClient

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vapi"
FIXTURE_NAMES = sorted(path.name for path in FIXTURES.glob("*.json"))
URL = "https://clinic.example/api/vapi/tools"

# The SDK model of each kind of server message the fixtures hold.
SERVER_MESSAGE_MODELS: dict[str, type[pydantic.BaseModel]] = {
    "tool-calls": ServerMessageToolCalls,
    "status-update": ServerMessageStatusUpdate,
    "end-of-call-report": ServerMessageEndOfCallReport,
    "assistant-request": ServerMessageAssistantRequest,
}

# JSON Schema keywords the generated parameter schemas use that the SDK's `JsonSchema` model
# does not declare (it keeps them as extra fields); anywhere else an unknown field is an error.
UNTYPED_JSON_SCHEMA_KEYWORDS = {"maxLength", "minLength", "minimum", "maximum"}

create_tools_request = pydantic.TypeAdapter(CreateToolsRequest)


def _message(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())["message"]


def _unknown_fields(node, path: str = "$") -> list[tuple[str, str]]:
    """(path, key) of every field some parsed SDK model kept as an extra (unknown) field."""
    found: list[tuple[str, str]] = []
    if isinstance(node, pydantic.BaseModel):
        found += [(path, key) for key in node.model_extra or {}]
        for name in type(node).model_fields:
            found += _unknown_fields(getattr(node, name), f"{path}.{name}")
    elif isinstance(node, list | tuple):
        for index, item in enumerate(node):
            found += _unknown_fields(item, f"{path}[{index}]")
    elif isinstance(node, dict):
        for key, item in node.items():
            found += _unknown_fields(item, f"{path}.{key}")
    return found


def _with_string_arguments(message: dict) -> dict:
    """A copy of a tool-calls message with every `function.arguments` object as a JSON string.

    VAPI sends `arguments` as an object (the webhook's tolerant parser takes an object or a
    string, and keeps doing so), but the SDK types `ToolCallFunction.arguments` as `str`: convert
    before validating, or every fixture would fail on that one field.
    """
    shaped = copy.deepcopy(message)
    calls = [*shaped.get("toolCallList", []), *shaped.get("toolCalls", [])]
    calls += [item["toolCall"] for item in shaped.get("toolWithToolCallList", [])]
    for call in calls:
        arguments = call["function"]["arguments"]
        if not isinstance(arguments, str):
            call["function"]["arguments"] = json.dumps(arguments)
    return shaped


# --- the tool definitions `vapi tools` prints ------------------------------------------------


def test_every_emitted_tool_definition_is_a_create_function_tool_dto(app):
    printed = app.test_cli_runner().invoke(args=["vapi", "tools", "--url", URL])
    assert printed.exit_code == 0, printed.output
    definitions = json.loads(printed.stdout)

    assert [d["function"]["name"] for d in definitions] == list(TOOLS)
    for definition in definitions:
        name = definition["function"]["name"]
        try:
            dto = CreateFunctionToolDto.model_validate(definition)
            # `type` is not a field of the DTO but the discriminator of the create-tool request.
            request = create_tools_request.validate_python(definition)
        except pydantic.ValidationError as exc:
            pytest.fail(f"{name} is not a valid Vapi function tool: {exc}")
        assert isinstance(request, CreateToolsRequest_Function), (name, type(request))
        unknown = [
            (path, key)
            for path, key in _unknown_fields(dto)
            if not (path == "$" and key == "type")
            and not (
                path.startswith("$.function.parameters.properties.")
                and key in UNTYPED_JSON_SCHEMA_KEYWORDS
            )
        ]
        assert unknown == [], f"{name} has fields the Vapi SDK does not know: {unknown}"
        assert dto.function is not None and dto.function.parameters is not None
        assert dto.function.name == name
        assert dto.server is not None and dto.server.url == URL
        assert dto.async_ is False


# --- the shared VAPI payloads ----------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_call_is_an_sdk_call(name):
    try:
        call = Call.model_validate(_message(name)["call"])
    except pydantic.ValidationError as exc:
        pytest.fail(f"{name}: `call` is not a Vapi Call: {exc}")

    assert call.updated_at >= call.created_at


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_is_an_sdk_server_message(name):
    message = _message(name)
    model = SERVER_MESSAGE_MODELS.get(message["type"])
    assert model is not None, f"{name}: no SDK model mapped for type {message['type']!r}"
    shaped = _with_string_arguments(message)
    if message["type"] == "tool-calls" and "toolCallList" not in message:
        # The legacy shape (only `toolCalls`), which the webhook still accepts. The SDK requires
        # `toolCallList`; that must be the only way the fixture departs from it.
        with pytest.raises(pydantic.ValidationError) as missing:
            model.model_validate(shaped)
        assert [(e["type"], e["loc"]) for e in missing.value.errors()] == [
            ("missing", ("toolCallList",))
        ]
        shaped["toolCallList"] = shaped["toolCalls"]

    try:
        parsed = model.model_validate(shaped)
    except pydantic.ValidationError as exc:
        pytest.fail(f"{name} is not a Vapi {model.__name__}: {exc}")

    if isinstance(parsed, ServerMessageToolCalls):
        # `toolCalls` is not in the SDK's model (it keeps it as an extra field): check it as
        # a list of the same ToolCall, and the same calls as `toolCallList`.
        legacy = [ToolCall.model_validate(call) for call in shaped.get("toolCalls", [])]
        assert not legacy or legacy == list(parsed.tool_call_list)
        assert all(
            isinstance(item, ServerMessageToolCallsToolWithToolCallListItem_Function)
            for item in parsed.tool_with_tool_call_list
        )


# --- the response check in CheckedClient -----------------------------------------------------

GOOD = {"results": [{"toolCallId": "call_1", "name": "bookAppointment", "result": "{}"}]}


def _stub_client(status: int = 200, content_type: str = "application/json") -> CheckedClient:
    """A CheckedClient on a stub webhook that answers whatever body the request carries."""
    stub = Flask(__name__)
    stub.test_client_class = CheckedClient

    @stub.post("/api/vapi/tools")
    @stub.post("/api/vapi/tools/<int:org_id>")
    @stub.post("/elsewhere")
    def echo(org_id: int | None = None):
        return request.get_data(), status, {"Content-Type": content_type}

    client = stub.test_client()
    assert isinstance(client, CheckedClient)
    return client


def _answer(client, body, path: str = "/api/vapi/tools"):
    return client.post(path, data=json.dumps(body))


def _entry(**fields) -> dict:
    entry = {"toolCallId": "call_1", "name": "bookAppointment", "result": "{}", **fields}
    return {"results": [{k: v for k, v in entry.items() if v is not None}]}


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        # the SDK's model refuses these (pydantic names the field as results.0.<field>) ...
        (_entry(toolCallId=7), r"results\.0\.toolCallId\n  Input should be a valid string"),
        (_entry(toolCallId=None), r"results\.0\.toolCallId\n  Field required"),
        (_entry(name=None), r"results\.0\.name\n  Field required"),
        (_entry(name=["bookAppointment"]), r"results\.0\.name\n  Input should be a valid string"),
        (_entry(result={"status": "booked"}), r"results\.0\.result\n  Input should be a valid"),
        (_entry(error=404, result=None), r"results\.0\.error\n  Input should be a valid string"),
        ({"results": "booked"}, r"results\n  Input should be a valid list"),
        # ... and these only the checks CheckedClient adds to it
        ({"results": None}, r"`results` is not a list"),
        (
            {"results": [{"tool_call_id": "call_1", "name": "bookAppointment"}]},
            r"results\[0\]\.toolCallId is None, not a string",
        ),
    ],
    ids=[
        "int-toolCallId",
        "missing-toolCallId",
        "missing-name",
        "list-name",
        "object-result",
        "int-error",
        "results-not-a-list",
        "null-results",
        "snake-case-toolCallId",
    ],
)
def test_checked_client_fails_on_a_body_vapi_cannot_use(body, complaint):
    for path in ("/api/vapi/tools", "/api/vapi/tools/42"):
        with pytest.raises(AssertionError, match=complaint):
            _answer(_stub_client(), body, path)


def test_checked_client_fails_on_results_not_served_as_json():
    with pytest.raises(AssertionError, match="application/json"):
        _answer(_stub_client(content_type="text/plain"), GOOD)


def test_checked_client_passes_a_good_body_and_checks_only_200_tool_answers():
    bad = _entry(toolCallId=7)

    assert _answer(_stub_client(), GOOD).get_json() == GOOD
    assert _answer(_stub_client(), {}).get_json() == {}
    assert _answer(_stub_client(status=400), bad).status_code == 400
    assert _answer(_stub_client(), bad, "/elsewhere").status_code == 200
