"""VAPI's `end-of-call-report` (to the same server URL as the tools): the call id, start and
end, ended reason, the analysis' summary and structured data, and the recording URL."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from booking_service.use_cases.call_reports import CallEnd
from booking_service.voice.invocation import usable_id
from booking_service.voice.vapi.envelope import PLATFORM


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _when(value: Any) -> datetime | None:
    """An ISO 8601 time as VAPI writes it ("2026-11-24T15:10:00.000Z"), else None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def call_end(body: bytes, header_call_id: str | None = None) -> CallEnd | None:
    """The report in an end-of-call-report body, or None without a usable call id."""
    try:
        message = _dict(_dict(json.loads(body)).get("message"))
    except (ValueError, RecursionError):
        return None
    call = _dict(message.get("call"))
    call_id = usable_id(call.get("id")) or header_call_id
    if call_id is None:
        return None
    artifact = _dict(message.get("artifact"))
    analysis = _dict(message.get("analysis"))
    recording = artifact.get("recordingUrl") or _dict(artifact.get("recording")).get("stereoUrl")
    return CallEnd(
        platform=PLATFORM,
        call_id=call_id,
        started_at=_when(message.get("startedAt") or call.get("startedAt")),
        ended_at=_when(message.get("endedAt") or call.get("endedAt")),
        ended_reason=message.get("endedReason"),
        summary=analysis.get("summary"),
        structured_data=_dict(analysis.get("structuredData")) or None,
        recording_url=recording or message.get("recordingUrl"),
    )
