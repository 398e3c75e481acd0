"""One tool invocation as every platform's edge hands it to the pipeline (voice/pipeline.py)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from booking_service.domain.normalize import unstorable_character
from booking_service.use_cases.orgs import OrgInfo


@dataclass(frozen=True)
class Invocation:
    """A tool call, normalized: what the pipeline needs and nothing of the platform's wire.

    - `platform`: the edge's name ("vapi"); it names the source of the changes made.
    - `org`: the organization the edge authenticated the request for.
    - `call_id`: the platform's id of the phone or web call, if any (usable_id); a stored
      answer is only given back within the same call.
    - `key`: the invocation key, the ledger's idempotency key (usable_id), or None when the
      platform sent none that is usable (the call is then answered with an error). A platform
      without a per-invocation id uses `invocation_key(...)`.
    - `tool`: the function name as sent (None when absent), `arguments` the arguments as an
      object, or None when they could not be read.
    - `caller_number`: the caller ID (E.164, normalized for the organization's region) of a
      phone call, the only proof of who is calling; None on web calls and chats, or when
      withheld or unreadable. A number the caller or the model names is an argument.
    """

    platform: str
    org: OrgInfo
    call_id: str | None
    key: str | None
    tool: str | None
    arguments: dict[str, Any] | None
    caller_number: str | None = None


MAX_ID_LENGTH = 200


def usable_id(value: Any) -> str | None:
    """An identifier kept exactly as sent, or None when it cannot serve as a key.

    Never trimmed or cut: two ids that differ only past a cut would share a ledger row.
    """
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    text = str(value)
    if not text.strip() or len(text) > MAX_ID_LENGTH or unstorable_character(text):
        return None
    return text


def invocation_key(platform: str, call_id: str, tool: str, arguments: dict[str, Any]) -> str:
    """The invocation key of a platform that sends no per-invocation id (Retell, ElevenLabs):
    SHA-256 of platform, call id, tool name and canonical JSON arguments, as hex.

    A platform's retry of the same body then replays the stored answer; a model re-issuing
    the call with other arguments is a new invocation. Without a call id there is nothing to
    scope the key to: give the invocation no key (None) instead.
    """
    canonical = json.dumps(
        [platform, call_id, tool, arguments],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()
