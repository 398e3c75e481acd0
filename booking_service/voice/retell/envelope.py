"""Reading a Retell custom-function request: `{"name", "call", "args"}` (args_at_root off).

`call` is Retell's call object: `call_id`, `call_type` (`phone_call` or `web_call`),
`direction`, `from_number`. Only an inbound phone call's `from_number` is the caller ID the
network vouches for; a web call has no number, and on an outbound call it is ours.
Retell sends no per-invocation id: the key is a hash of platform, call, tool and arguments, so
Retell's retry of the same body replays the stored answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from booking_service.domain.normalize import normalize_phone
from booking_service.use_cases.orgs import OrgInfo
from booking_service.voice.invocation import Invocation, invocation_key, usable_id

PLATFORM = "retell"


class BadRequest(ValueError):
    """The body is not a Retell function call; the message is safe to return."""


@dataclass(frozen=True)
class FunctionCall:
    """The parts of a Retell request the pipeline needs."""

    name: str | None
    arguments: dict[str, Any] | None
    call_id: str | None
    call_type: str | None
    direction: str | None
    from_number: str | None

    @property
    def is_inbound_phone_call(self) -> bool:
        return self.call_type == "phone_call" and self.direction == "inbound"

    def invocation(self, org: OrgInfo) -> Invocation:
        """The request as the pipeline's one invocation."""
        verified = (
            normalize_phone(self.from_number, org.phone_region)
            if self.is_inbound_phone_call and self.from_number
            else None
        )
        # Unreadable arguments still get a key (of no arguments): the caller then hears that
        # the details could not be read, not that the request had no id.
        key = (
            invocation_key(PLATFORM, self.call_id, self.name, self.arguments or {})
            if self.call_id is not None and self.name is not None
            else None
        )
        return Invocation(
            platform=PLATFORM,
            org=org,
            call_id=self.call_id,
            key=key,
            tool=self.name,
            arguments=self.arguments,
            caller_number=verified,
        )


def _text(value: Any, limit: int = 200) -> str | None:
    return value.strip()[:limit] if isinstance(value, str) and value.strip() else None


def parse(body: bytes) -> FunctionCall:
    """Parse the body; raise BadRequest when it is not JSON or not a function call."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest("The body is not valid JSON.") from None
    if not isinstance(document, dict) or "name" not in document:
        raise BadRequest("The body has no function 'name'.")
    raw_call = document.get("call")
    call: dict = raw_call if isinstance(raw_call, dict) else {}
    raw_args = document.get("args", {})
    if isinstance(raw_args, str):  # tolerated: some tools send the arguments as a string
        try:
            raw_args = json.loads(raw_args) if raw_args.strip() else {}
        except ValueError:
            raw_args = None
    return FunctionCall(
        name=_text(document.get("name"), 64),
        arguments=raw_args if isinstance(raw_args, dict) else None,
        call_id=usable_id(call.get("call_id")),
        call_type=_text(call.get("call_type"), 40),
        direction=_text(call.get("direction"), 40),
        from_number=_text(call.get("from_number"), 64),
    )
