"""VAPI function-tool definitions generated from the schemas that validate the arguments.

One source of truth: what `flask --app wsgi vapi tools --url URL` prints is derived from the
same marshmallow schemas the webhook loads arguments with, so the two cannot drift apart.
"""

from __future__ import annotations

from booking_service.voice.schemas import parameters_schema
from booking_service.voice.tools import TOOLS

# VAPI's default is 20 s; the service answers well within it.
TIMEOUT_SECONDS = 20


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
