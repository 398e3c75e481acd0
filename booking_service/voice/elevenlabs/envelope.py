"""Reading an ElevenLabs server-tool request: the body is the tool's own arguments plus what
our exported configs map in from system variables the platform fills (never the model):
`caller_id` ← system__caller_id, `conversation_id` ← system__conversation_id, `call_sid` ←
system__call_sid (a Twilio phone call only).

The caller is verified only on a phone call: `caller_id` parses as a number and `call_sid` is
present; a web or widget conversation has neither, and a caller_id without call_sid is a
claim. No per-invocation id is sent: the key is a hash of platform, conversation, tool and
arguments, so a retry of the same body replays the stored answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from booking_service.domain.normalize import normalize_phone
from booking_service.use_cases.orgs import OrgInfo
from booking_service.voice.invocation import Invocation, invocation_key, usable_id

PLATFORM = "elevenlabs"
# The body fields our configs fill from system variables (not the tool's arguments).
SYSTEM_FIELDS = {
    "caller_id": "system__caller_id",
    "conversation_id": "system__conversation_id",
    "call_sid": "system__call_sid",
}


class BadRequest(ValueError):
    """The body is not a JSON object; the message is safe to return."""


@dataclass(frozen=True)
class ToolRequest:
    """One ElevenLabs tool call, split into the tool's arguments and the platform's fields."""

    tool: str
    arguments: dict[str, Any]
    caller_id: str | None
    conversation_id: str | None
    call_sid: str | None

    def invocation(self, org: OrgInfo) -> Invocation:
        verified = (
            normalize_phone(self.caller_id, org.phone_region)
            if self.caller_id and self.call_sid
            else None
        )
        key = (
            invocation_key(PLATFORM, self.conversation_id, self.tool, self.arguments)
            if self.conversation_id is not None
            else None
        )
        return Invocation(
            platform=PLATFORM,
            org=org,
            call_id=self.conversation_id,
            key=key,
            tool=self.tool,
            arguments=self.arguments,
            caller_number=verified,
        )


def _text(value: Any, limit: int = 64) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value.strip()[:limit] if isinstance(value, str) and value.strip() else None


def parse(tool: str, body: bytes) -> ToolRequest:
    """Parse the body of a call to `tool`; raise BadRequest unless it is a JSON object (an
    empty body is a tool without arguments)."""
    if not body.strip():
        document: Any = {}
    else:
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise BadRequest("The body is not valid JSON.") from None
    if not isinstance(document, dict):
        raise BadRequest("The body is not a JSON object.")
    arguments = {k: v for k, v in document.items() if k not in SYSTEM_FIELDS}
    return ToolRequest(
        tool=tool[:64],
        arguments=arguments,
        caller_id=_text(document.get("caller_id")),
        conversation_id=usable_id(document.get("conversation_id")),
        call_sid=_text(document.get("call_sid"), 100),
    )
