"""VAPI function-tool definitions generated from the schemas that validate the arguments.

One source of truth: what `flask --app wsgi vapi tools --url URL` prints is derived from the
same marshmallow schemas the webhook loads arguments with, so the two cannot drift apart.
"""

from __future__ import annotations

from booking_service.voice.schemas import parameters_schema
from booking_service.voice.tools import TOOLS

# VAPI's default is 20 s; the service answers well within it.
TIMEOUT_SECONDS = 20
# Past this the caller hears that we are still at it rather than silence.
DELAYED_AFTER_MS = 4000
STILL_CHECKING = "Still checking, one moment."
# Spoken when the request fails outright (a timeout, our server unreachable): the caller must
# not hear a model guess that it worked.
FAILED = (
    "Sorry, I couldn't reach the booking system just now, so nothing was changed. "
    "Shall I try again?"
)


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
            "messages": [
                {"type": "request-start", "content": tool.request_start},
                {
                    "type": "request-response-delayed",
                    "content": STILL_CHECKING,
                    "timingMilliseconds": DELAYED_AFTER_MS,
                },
                {"type": "request-failed", "content": FAILED},
            ],
        }
        for tool in TOOLS.values()
    ]
