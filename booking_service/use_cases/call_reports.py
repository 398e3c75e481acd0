"""What a call told us afterwards: each platform's end-of-call report stored once per call,
with what the call did according to the ledger, and read back for the owner.

A platform sends its report once and does not retry (VAPI, ElevenLabs), or retries it
(Retell), and duplicates happen: the first one is kept, a repeat changes nothing and raises no
second `call.ended` event. Which appointments the call booked, moved or cancelled comes from
the tool calls the ledger answered for that platform's call id, never from the report's own
text. Everything in a report is caller-influenced text (a model's summary of what the caller
said): it is stored bounded and shown escaped to staff, never spoken to anyone or logged.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from booking_service.domain import outbox
from booking_service.domain.errors import InputError, NotFound
from booking_service.domain.normalize import without_unstorable
from booking_service.domain.times import utc_now
from booking_service.persistence.repositories.call_reports import CallRow
from booking_service.persistence.unit_of_work import AbstractUnitOfWork

__all__ = [
    "CallEnd",
    "CallRow",
    "call_json",
    "calls_between",
    "calls_touching",
    "calls_without_booking",
    "record_call",
]

log = logging.getLogger(__name__)

MAX_SUMMARY = 4000
MAX_REASON = 200
MAX_URL = 2000
MAX_STRUCTURED_BYTES = 20_000

BOOKED, CHANGED, NONE = "booked", "changed", "none"


@dataclass(frozen=True)
class CallEnd:
    """One platform's report of a finished call, as its front end read it."""

    platform: str
    call_id: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    ended_reason: str | None = None
    summary: str | None = None
    structured_data: dict | None = None
    recording_url: str | None = None


def _text(value: object, limit: int) -> str | None:
    """Caller-influenced text as it may be stored: a string, without characters PostgreSQL
    refuses (NUL, lone surrogates), at most `limit` characters."""
    if not isinstance(value, str):
        return None
    text = without_unstorable(value).strip()
    return text[:limit] or None


def _structured(value: object) -> dict | None:
    if not isinstance(value, dict) or not value:
        return None
    try:
        encoded = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        return None
    if len(encoded) > MAX_STRUCTURED_BYTES or "\\u0000" in encoded:
        return None
    return json.loads(encoded)  # lone surrogates are escaped, so PostgreSQL stores them


def what_the_call_did(answers: list[tuple[str, dict]]) -> tuple[list[str], str]:
    """The references a call's answered tool calls booked, moved or cancelled, and its
    outcome: "booked" when it booked anything new, else "changed" when it moved or cancelled
    something, else "none"."""
    references: list[str] = []
    booked = changed = False
    for tool, answer in answers:
        try:
            payload = json.loads(answer.get("result") or "")
        except (TypeError, ValueError):
            continue  # an error answer: nothing happened
        if not isinstance(payload, dict):
            continue
        status = payload.get("status")
        appointment = payload.get("appointment")
        reference = appointment.get("reference") if isinstance(appointment, dict) else None
        if not isinstance(reference, str):
            continue
        if tool == "bookAppointment" and status == "booked":
            booked = booked or not payload.get("alreadyBooked")
        elif (tool, status) in (
            ("rescheduleAppointment", "rescheduled"),
            ("cancelAppointment", "cancelled"),
        ):
            changed = True
        else:
            continue
        if reference not in references:
            references.append(reference)
    return references, BOOKED if booked else CHANGED if changed else NONE


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def call_json(row: CallRow) -> dict:
    """A stored report as the CLI and the `call.ended` event show it."""
    return {
        "call_id": row.call_id,
        "platform": row.platform,
        "started_at": _iso(row.started_at),
        "ended_at": _iso(row.ended_at),
        "ended_reason": row.ended_reason,
        "summary": row.summary,
        "references": list(row.references),
        "outcome": row.outcome,
    }


def _event(row: CallRow) -> dict:
    data = call_json(row)
    return {
        "platform": data["platform"],
        "callId": data["call_id"],
        "startedAt": data["started_at"],
        "endedAt": data["ended_at"],
        "endedReason": data["ended_reason"],
        "summary": data["summary"],
        "references": data["references"],
        "outcome": data["outcome"],
    }


def record_call(uow: AbstractUnitOfWork, org_id: int, report: CallEnd) -> CallRow | None:
    """Store the report of a call once, with what the ledger says the call did, and add the
    `call.ended` event; None (and nothing changed) when this call was reported before.
    The recording URL is kept only when the organization opted in."""
    with uow:
        settings = uow.voice_platforms.get(org_id)
        answers = uow.tool_calls.answers_of_call(org_id, report.platform, report.call_id)
        references, outcome = what_the_call_did(answers)
        row = uow.call_reports.add(
            org_id,
            {
                "platform": report.platform,
                "call_id": report.call_id,
                "started_at": report.started_at,
                "ended_at": report.ended_at,
                "ended_reason": _text(report.ended_reason, MAX_REASON),
                "summary": _text(report.summary, MAX_SUMMARY),
                "structured_data": _structured(report.structured_data),
                "recording_url": (
                    _text(report.recording_url, MAX_URL) if settings.keep_recordings else None
                ),
                "references": references,
                "outcome": outcome,
            },
        )
        if row is None:
            log.info("call report repeated: the first one is kept")
            return None
        uow.outbox.add_org_event(
            org_id,
            outbox.new_event_id(),
            outbox.CALL_ENDED,
            outbox.call_payload(org_id, _event(row), utc_now()),
        )
        uow.commit()
    log.info("call report stored: outcome=%s references=%d", outcome, len(references))
    return row


def calls_between(
    uow: AbstractUnitOfWork,
    org_id: int,
    *,
    first_day: date | None,
    days: int,
    without_booking: bool = False,
    now: datetime | None = None,
) -> list[CallRow]:
    """The calls that ended on `days` local days from `first_day` (default: the last `days`
    days up to today), oldest first. Raises NotFound without such organization."""
    if not 1 <= days <= 366:
        raise InputError("days", "must be between 1 and 366")
    with uow:
        org = uow.organizations.get(org_id)
        if org is None:
            raise NotFound("organization", org_id)
        zone = ZoneInfo(org.timezone)
        today = (now or utc_now()).astimezone(zone).date()
        first = first_day if first_day is not None else today - timedelta(days=days - 1)
        start = datetime.combine(first, time.min, zone)
        end = datetime.combine(first + timedelta(days=days), time.min, zone)
        return uow.call_reports.between(org_id, start, end, without_booking=without_booking)


def calls_touching(uow: AbstractUnitOfWork, org_id: int, reference: str) -> list[CallRow]:
    """The reports of the calls that booked, moved or cancelled this appointment."""
    with uow:
        return uow.call_reports.touching(org_id, reference)


def calls_without_booking(
    uow: AbstractUnitOfWork, org_id: int, *, days: int = 7, limit: int = 20
) -> list[CallRow]:
    """The latest calls of the last `days` days that booked nothing new, newest first."""
    with uow:
        since = utc_now() - timedelta(days=days)
        return uow.call_reports.recent_without_booking(org_id, since, limit)
