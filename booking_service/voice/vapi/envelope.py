"""Reading VAPI's server messages tolerantly (see shared/docs/VAPI.md).

Tool calls come in `message.toolCallList`, else `message.toolCalls`; each is
`{id, type, function: {name, arguments}}` or, on some doc pages, `{id, name, arguments|parameters}`.
Arguments arrive as an object or as a JSON string.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from booking_service.domain.normalize import normalize_phone
from booking_service.use_cases.orgs import OrgInfo
from booking_service.voice.invocation import Invocation, usable_id

PLATFORM = "vapi"


class BadEnvelope(ValueError):
    """The body is not a VAPI server message; the message is safe to return."""


@dataclass(frozen=True)
class ToolCall:
    """One requested tool call as VAPI sent it. `arguments` is None when they could not be read.

    `id` is the toolCallId exactly as sent when it is usable as a ledger key, else None;
    `reply_id` is what the answer echoes (VAPI matches answers to calls by it).
    """

    id: str | None
    name: str | None
    arguments: dict[str, Any] | None
    raw_arguments: Any = None
    reply_id: Any = None


# The only calls whose customer.number is a caller ID the network vouches for (on outbound
# calls it is the number dialled, which is where the call goes).
PHONE_CALL_TYPES = ("inboundPhoneCall", "outboundPhoneCall")


@dataclass(frozen=True)
class Envelope:
    """The parts of a server message the webhook uses."""

    type: str | None
    calls: list[ToolCall] = field(default_factory=list)
    caller_number: str | None = None
    vapi_call_id: str | None = None
    call_type: str | None = None
    has_call: bool = False
    is_chat: bool = False

    def invocations(self, org: OrgInfo, call_id: str | None) -> list[Invocation]:
        """The tool calls for the pipeline, in order (`call_id`: the call's id, or the
        X-Call-Id header's)."""
        verified = self.verified_caller(org)
        return [
            Invocation(
                platform=PLATFORM,
                org=org,
                call_id=call_id,
                key=call.id,
                tool=call.name,
                arguments=call.arguments,
                caller_number=verified,
            )
            for call in self.calls
        ]

    def verified_caller(self, org: OrgInfo) -> str | None:
        """The caller ID, normalized, when this is a phone call whose number parses."""
        # Only a phone call's caller ID is proof of who is calling; anything else that
        # names a number (a web call, a chat, a withheld or SIP caller) is a claim.
        if not self.is_phone_call:
            return None
        return normalize_phone(self.caller_number, org.phone_region)

    @property
    def is_phone_call(self) -> bool:
        """A phone call: `call.type` says so, or, when absent, there is a call and no chat.
        Web calls, chats and unknown call types are not: their customer.number is a claim."""
        if self.is_chat:
            return False
        if self.call_type is not None:
            return self.call_type in PHONE_CALL_TYPES
        return self.has_call


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value: Any, limit: int = 200) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()[:limit]
    return None


def _arguments(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return {}
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    return raw if isinstance(raw, dict) else None


def _invocation(item: Any) -> ToolCall:
    item = _dict(item)
    function = _dict(item.get("function"))
    name = function.get("name", item.get("name"))
    if "arguments" in function:
        raw = function["arguments"]
    elif "arguments" in item:
        raw = item["arguments"]
    else:
        raw = item.get("parameters")
    raw_id = item.get("id")
    return ToolCall(
        id=usable_id(raw_id),
        name=_text(name, 64),
        arguments=_arguments(raw),
        raw_arguments=raw,
        reply_id=raw_id if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) else None,
    )


# orjson reads an integer past 64 bits as a float (an id 123456789012345678901 would come back
# as "1.2345678901234568e+20"); the standard library keeps every digit.
_HUGE = float(2**63)


def _rounded(document: Any) -> bool:
    """Whether a number orjson may have read differently from the standard library sits
    where it matters: in the call's id or in the tool calls (their ids and arguments).
    Walking only those parts, not the ~50 KB around them, keeps the check cheap."""
    message = document.get("message") if isinstance(document, dict) else None
    if not isinstance(message, dict):
        return False
    call = message.get("call")
    todo: list[Any] = [
        call.get("id") if isinstance(call, dict) else None,
        message.get("toolCallList"),
        message.get("toolCalls"),
    ]
    while todo:
        item = todo.pop()
        if isinstance(item, float):
            if abs(item) >= _HUGE:
                return True
        elif isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return False


def _loads(body: bytes) -> Any:
    """orjson for speed; what it refuses, or might read differently where it matters, goes to
    the standard library, so that what the service accepts and how it reads it stay exactly
    as before: NaN and Infinity, lone surrogates (a caller's text then meets the tool's own
    refusal of invalid characters), a byte order mark, integers past 64 bits, nesting past
    orjson's limit. Both keep the last of duplicate keys."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)
    return json.loads(body) if _rounded(document) else document


def parse(body: bytes) -> Envelope:
    """Parse a request body; raise BadEnvelope for non-JSON bodies or a missing `message`."""
    try:
        document = _loads(body)
    except (ValueError, RecursionError):
        raise BadEnvelope("The body is not valid JSON.") from None
    if not isinstance(document, dict) or not isinstance(document.get("message"), dict):
        raise BadEnvelope("The body has no 'message' object.")
    message = document["message"]
    kind = message.get("type") if isinstance(message.get("type"), str) else None
    call = _dict(message.get("call"))
    caller = _dict(message.get("customer")).get("number") or _dict(call.get("customer")).get(
        "number"
    )
    call_type = call.get("type")
    envelope = Envelope(
        type=kind,
        caller_number=caller if isinstance(caller, str) else None,
        vapi_call_id=usable_id(call.get("id")),
        # A type that is not text is an unknown type, not an absent one.
        call_type=None if call_type is None else call_type if isinstance(call_type, str) else "",
        has_call=isinstance(message.get("call"), dict),
        is_chat=message.get("chat") is not None,
    )
    if kind != "tool-calls":
        return envelope
    items = message.get("toolCallList")
    if not isinstance(items, list):
        items = message.get("toolCalls")
    if not isinstance(items, list):
        raise BadEnvelope("The tool-calls message has no toolCallList.")
    return replace(envelope, calls=[_invocation(item) for item in items])
