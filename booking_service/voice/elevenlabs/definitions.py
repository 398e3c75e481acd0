"""ElevenLabs webhook tool configs generated from the schemas that validate the arguments
(`flask --app wsgi elevenlabs tools --url URL`).

ElevenLabs' literal properties take only a type, a description and an enum: no JSON-Schema
`format`, lengths or bounds, so those move into the description. The system variables that
identify the call are mapped in (the platform fills them, not the model); the secret goes in
a header from the workspace's secret store. Errors pass through verbatim (our sentences are
meant to be spoken) and a tool answers within 20 s.
"""

from __future__ import annotations

from booking_service.voice.elevenlabs.envelope import SYSTEM_FIELDS
from booking_service.voice.schemas import parameters_schema
from booking_service.voice.tools import TOOLS

RESPONSE_TIMEOUT_SECS = 20
SECRET_PLACEHOLDER = "YOUR_WORKSPACE_SECRET_ID"  # noqa: S105 - a placeholder, not a secret


def tools_url(base_url: str) -> str:
    """POST /api/elevenlabs/tools under the service's public base URL (each tool appends its
    name)."""
    return f"{base_url.rstrip('/')}/api/elevenlabs/tools"


def _literal(schema: dict) -> dict:
    notes = []
    if "format" in schema:
        notes.append(f"format {schema['format']}")
    if "maxLength" in schema:
        notes.append(f"at most {schema['maxLength']} characters")
    if "minimum" in schema and "maximum" in schema:
        notes.append(f"between {schema['minimum']} and {schema['maximum']}")
    description = schema.get("description", "")
    if notes:
        description = f"{description} ({'; '.join(notes)})".strip()
    literal: dict = {"type": schema.get("type", "string"), "description": description}
    if "enum" in schema:
        literal["enum"] = [str(value) for value in schema["enum"]]
    return literal


def _body_schema(parameters: dict) -> dict:
    properties = {name: _literal(value) for name, value in parameters["properties"].items()}
    for field, variable in SYSTEM_FIELDS.items():
        properties[field] = {"type": "string", "dynamic_variable": variable}
    return {
        "type": "object",
        "required": parameters.get("required", []),
        "properties": properties,
    }


def tool_configs(url: str, secret_id: str = SECRET_PLACEHOLDER) -> list[dict]:
    """Every tool as an ElevenLabs webhook tool config (`url`: POST /api/elevenlabs/tools;
    `secret_id`: the workspace secret holding "Bearer <the organization's secret>")."""
    base = url.rstrip("/")
    return [
        {
            "type": "webhook",
            "name": tool.name,
            "description": tool.description,
            "response_timeout_secs": RESPONSE_TIMEOUT_SECS,
            "pre_tool_speech": "force",  # the agent says it is checking before the call
            "execution_mode": "immediate",
            "tool_error_handling_mode": "passthrough",
            "api_schema": {
                "url": f"{base}/{tool.name}",
                "method": "POST",
                "content_type": "application/json",
                "request_headers": {"Authorization": {"secret_id": secret_id}},
                "request_body_schema": _body_schema(parameters_schema(tool.schema)),
            },
        }
        for tool in TOOLS.values()
    ]
