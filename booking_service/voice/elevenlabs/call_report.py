"""ElevenLabs' post-call webhook, signed `ElevenLabs-Signature: t=<unix s>,v0=<hex>` with the
organization's webhook secret (use_cases/signatures.elevenlabs_signature_ok).

`post_call_transcription` is stored: `data.conversation_id` (the call id its tool calls carry),
`metadata.start_time_unix_secs` and `call_duration_secs`, `metadata.termination_reason`, the
analysis' `transcript_summary` and data collection results. ElevenLabs sends no recording URL
(`post_call_audio` carries the audio itself, which is not kept); other types are acknowledged.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import request

from booking_service.persistence.unit_of_work import ConnectionScope
from booking_service.runtime.extensions import Runtime
from booking_service.use_cases.call_reports import CallEnd
from booking_service.use_cases.signatures import elevenlabs_signature_ok
from booking_service.use_cases.voice_platforms import OrgPlatform, org_platform
from booking_service.voice.elevenlabs.envelope import PLATFORM
from booking_service.voice.invocation import usable_id

HEADER = "ElevenLabs-Signature"
STORED_TYPE = "post_call_transcription"


class BadReport(ValueError):
    """The body is not an ElevenLabs post-call event; the message is safe to return."""


def signed_org(rt: Runtime, scope: ConnectionScope, org_id: int, body: bytes) -> OrgPlatform | None:
    """The organization the URL names when the event is signed with its webhook secret."""
    found = org_platform(scope.reader(), org_id)
    if found is None or found.settings.elevenlabs_webhook_secret is None:
        return None
    secret = rt.secrets.open_or_plain(found.settings.elevenlabs_webhook_secret)
    ok = elevenlabs_signature_ok(body, request.headers.get(HEADER), secret, time.time())
    return found if ok else None


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def parse_event(body: bytes) -> tuple[str | None, CallEnd | None]:
    """The event's type, and for `post_call_transcription` the report."""
    try:
        document = _dict(json.loads(body))
    except (ValueError, RecursionError):
        raise BadReport("The body is not valid JSON.") from None
    kind = document.get("type") if isinstance(document.get("type"), str) else None
    if kind != STORED_TYPE:
        return kind, None
    data = _dict(document.get("data"))
    call_id = usable_id(data.get("conversation_id"))
    if call_id is None:
        raise BadReport("The conversation has no conversation_id.")
    metadata = _dict(data.get("metadata"))
    analysis = _dict(data.get("analysis"))
    started = ended = None
    start = _number(metadata.get("start_time_unix_secs"))
    if start is not None and 0 < start < 1e11:
        started = datetime.fromtimestamp(start, UTC)
        duration = _number(metadata.get("call_duration_secs"))
        if duration is not None and 0 <= duration < 86400:
            ended = started + timedelta(seconds=duration)
    structured = {
        key: analysis[key]
        for key in ("call_successful", "data_collection_results")
        if analysis.get(key)
    }
    return kind, CallEnd(
        platform=PLATFORM,
        call_id=call_id,
        started_at=started,
        ended_at=ended,
        ended_reason=metadata.get("termination_reason"),
        summary=analysis.get("transcript_summary"),
        structured_data=structured or None,
    )
