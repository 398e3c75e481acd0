"""Retell's post-call webhook `{"event": "call_analyzed", "call": {...}}` (signed like the
tools): the call's start and end (ms), disconnection reason, the analysis' summary and custom
data, and the recording URL. `call_started` and `call_ended` are acknowledged and not stored:
`call_analyzed` follows with everything `call_ended` has, and the summary."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from booking_service.use_cases.call_reports import CallEnd
from booking_service.voice.invocation import usable_id
from booking_service.voice.retell.envelope import PLATFORM

STORED_EVENT = "call_analyzed"


class BadReport(ValueError):
    """The body is not a Retell call event; the message is safe to return."""


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _ms(value: Any) -> datetime | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_event(body: bytes) -> tuple[str | None, CallEnd | None]:
    """The event's name, and for `call_analyzed` the report (BadReport without a call id)."""
    try:
        document = _dict(json.loads(body))
    except (ValueError, RecursionError):
        raise BadReport("The body is not valid JSON.") from None
    event = document.get("event") if isinstance(document.get("event"), str) else None
    if event != STORED_EVENT:
        return event, None
    call = _dict(document.get("call"))
    call_id = usable_id(call.get("call_id"))
    if call_id is None:
        raise BadReport("The call has no call_id.")
    analysis = _dict(call.get("call_analysis"))
    structured = {
        key: analysis[key]
        for key in ("call_successful", "user_sentiment", "in_voicemail", "custom_analysis_data")
        if key in analysis
    }
    return event, CallEnd(
        platform=PLATFORM,
        call_id=call_id,
        started_at=_ms(call.get("start_timestamp")),
        ended_at=_ms(call.get("end_timestamp")),
        ended_reason=call.get("disconnection_reason"),
        summary=analysis.get("call_summary"),
        structured_data=structured or None,
        recording_url=call.get("recording_url"),
    )
