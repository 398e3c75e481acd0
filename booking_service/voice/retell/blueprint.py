"""POST /api/retell/ORG_ID/tools: verify Retell's signature, parse, and let the pipeline answer.

A forged, stale or missing signature is 401 and runs nothing. Business outcomes are 200 with
`{"result": sentence, ...}`; an unreadable body is 400, an oversized one 413. Retell retries a
failed request with the same body: its invocation key (a hash of the call, tool and
arguments) finds the stored answer, so a retry never books twice.
POST /api/retell/ORG_ID/events: Retell's post-call webhook, signed the same way; the
`call_analyzed` report is stored once per call (retell/call_report.py).
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
from booking_service.voice.http import instrument, read_body
from booking_service.voice.retell.answer import respond, unauthenticated
from booking_service.voice.retell.auth import signed_org
from booking_service.voice.retell.call_report import BadReport, parse_event
from booking_service.voice.retell.envelope import PLATFORM, BadRequest, parse

bp = Blueprint("retell", __name__, url_prefix="/api/retell")
instrument(bp, "retell_tools")
log = logging.getLogger(__name__)


@bp.post("/<int:org_id>/tools")
def tools(org_id: int):
    """Answer one Retell custom-function call for the organization the URL names."""
    rt = runtime()
    started = g.arrived
    with log_context(request_id=g.request_id):
        body = read_body(rt.settings.max_body_bytes)  # 413 before any database work
        if pipeline.queued_too_long(rt, started):
            log.warning("request queued past its budget; answered without running it")
            return unauthenticated(replies.OUT_OF_TIME)

        def answer(scope: ConnectionScope, use_cache: bool, answered: tuple[Answer, ...]):
            return _authenticated(rt, scope, org_id, body, started, answered)

        # The organization is read afresh with its key on every request (its version with
        # it), so the catalogue and opening hours kept for that version may be used.
        return pipeline.serve(rt, PLATFORM, started, answer, cached=True)


def _authenticated(
    rt: Runtime,
    scope: ConnectionScope,
    org_id: int,
    body: bytes,
    started: float,
    answered: tuple[Answer, ...],
):
    try:
        found = signed_org(rt, scope, org_id, body)
    except Exception as exc:
        return unauthenticated(pipeline.unauthenticated_sentence(exc))
    if found is None:
        log.info("rejected Retell request: unknown organization or bad signature")
        return error_response(401, "Missing or invalid signature.")
    try:
        call = parse(body)
    except BadRequest as exc:
        return error_response(400, str(exc))
    org = found.org
    with log_context(org_id=org.id, call_id=call.call_id):
        return pipeline.answer_one(
            rt,
            scope,
            org,
            call.invocation(org),
            started=started,
            answered=answered,
            respond=respond,
            unauthenticated=unauthenticated,
        )


@bp.post("/<int:org_id>/events")
def events(org_id: int):
    """Store Retell's `call_analyzed` report once; acknowledge the other call events."""
    return call_events.receive(
        org_id,
        platform=PLATFORM,
        name="Retell",
        signed_org=signed_org,
        parse_event=parse_event,
        bad_report=BadReport,
    )
