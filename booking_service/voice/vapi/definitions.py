"""VAPI function-tool definitions generated from the schemas that validate the arguments.

One source of truth: what `flask --app wsgi vapi tools --url URL` prints is derived from the
same marshmallow schemas the webhook loads arguments with, so the two cannot drift apart.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from booking_service.voice.schemas import LenientInteger, SpokenText
from booking_service.voice.tools import TOOLS

# VAPI's default is 20 s; the service answers well within it.
TIMEOUT_SECONDS = 20


def _property(field: fields.Field) -> dict:
    if isinstance(field, LenientInteger):
        prop: dict = {"type": "integer"}
        for validator in field.validators:
            if isinstance(validator, validate.Range):
                if validator.min is not None:
                    prop["minimum"] = validator.min
                if validator.max is not None:
                    prop["maximum"] = validator.max
    elif isinstance(field, SpokenText):
        prop = {"type": "string", "maxLength": field.max_length}
    else:  # pragma: no cover - every argument field is one of the two above
        raise TypeError(f"no JSON Schema mapping for {type(field).__name__}")
    description = field.metadata.get("description")
    if description:
        prop["description"] = description
    return prop


def parameters_schema(schema: type[Schema]) -> dict:
    """The JSON Schema (object) describing a tool's arguments."""
    properties = {}
    required = []
    for name, field in schema().fields.items():
        key = field.data_key or name
        properties[key] = _property(field)
        if field.required:
            required.append(key)
    result: dict = {"type": "object", "properties": properties}
    if required:
        result["required"] = required
    return result


def tool_definitions(url: str) -> list[dict]:
    """Every tool the webhook dispatches, as VAPI function-tool definitions."""
    return [
        {
            "type": "function",
            "async": False,
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": parameters_schema(tool.schema),
            },
            "server": {"url": url, "timeoutSeconds": TIMEOUT_SECONDS},
            "messages": [{"type": "request-start", "content": tool.request_start}],
        }
        for tool in TOOLS.values()
    ]
