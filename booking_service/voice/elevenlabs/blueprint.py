"""POST /api/elevenlabs/tools/TOOL_NAME: authenticate the bearer secret, parse, and let the
pipeline answer. POST /api/elevenlabs/ORG_ID/events: the signed post-call webhook, whose
`post_call_transcription` is stored once per conversation (elevenlabs/call_report.py).

A missing or wrong secret is 401 and runs nothing; business outcomes are 200 with
`{"result": sentence, ...}`; a body that is not a JSON object is 400, an oversized one 413.
"""

from __future__ import annotations

import logging

from flask import Blueprint, g

from booking_service.api.errors import error_response
from booking_service.persistence.unit_of_work import ConnectionScope
from booking_service.runtime.extensions import Runtime, runtime
from booking_service.runtime.logging_setup import log_context
from booking_service.use_cases.tool_calls import Answer
from booking_service.voice import call_events, pipeline, replies
from booking_service.voice.elevenlabs.answer import respond, unauthenticated
from booking_service.voice.elevenlabs.auth import org_with_secret
from booking_service.voice.elevenlabs.call_report import BadReport, parse_event, signed_org
from booking_service.voice.elevenlabs.envelope import PLATFORM, BadRequest, parse
from booking_service.voice.http import instrument, read_body

bp = Blueprint("elevenlabs", __name__, url_prefix="/api/elevenlabs")
instrument(bp, "elevenlabs_tools")
log = logging.getLogger(__name__)


@bp.post("/tools/<tool>")
def tools(tool: str):
    """Answer one ElevenLabs server-tool call."""
    rt = runtime()
    started = g.arrived
    with log_context(request_id=g.request_id):
        body = read_body(rt.settings.max_body_bytes)  # 413 before any database work
        if pipeline.queued_too_long(rt, started):
            log.warning("request queued past its budget; answered without running it")
            return unauthenticated(replies.OUT_OF_TIME)

        def answer(scope: ConnectionScope, use_cache: bool, answered: tuple[Answer, ...]):
            return _authenticated(rt, scope, use_cache, tool, body, started, answered)

        return pipeline.serve(rt, PLATFORM, started, answer, cached=True)


def _authenticated(
    rt: Runtime,
    scope: ConnectionScope,
    use_cache: bool,
    tool: str,
    body: bytes,
    started: float,
    answered: tuple[Answer, ...],
):
    try:
        org = org_with_secret(scope, use_cache)
    except Exception as exc:
        return unauthenticated(pipeline.unauthenticated_sentence(exc))
    if org is None:
        log.info("rejected ElevenLabs request: missing or invalid credentials")
        return error_response(401, "Missing or invalid credentials.")
    try:
        request = parse(tool, body)
    except BadRequest as exc:
        return error_response(400, str(exc))
    with log_context(org_id=org.id, call_id=request.conversation_id):
        return pipeline.answer_one(
            rt,
            scope,
            org,
            request.invocation(org),
            started=started,
            answered=answered,
            respond=respond,
            unauthenticated=unauthenticated,
        )


@bp.post("/<int:org_id>/events")
def events(org_id: int):
    """Store ElevenLabs' `post_call_transcription` once; acknowledge the other post-call types."""
    return call_events.receive(
        org_id,
        platform=PLATFORM,
        name="ElevenLabs",
        signed_org=signed_org,
        parse_event=parse_event,
        bad_report=BadReport,
    )
