"""POST /api/vapi/tools: authenticate, parse, and let the pipeline answer every tool call.

Business outcomes are always HTTP 200 (VAPI ignores the body of any other status, so the caller
would hear nothing); only a missing credential (401), an unreadable body (400) or an oversized
one (413) get another status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, g, jsonify, request

from booking_service.api.errors import error_response
from booking_service.domain.errors import DatabaseUnavailable, OutOfTime, StaleOrganization
from booking_service.domain.times import utc_now
from booking_service.persistence.unit_of_work import ConnectionScope
from booking_service.runtime.extensions import Runtime, runtime
from booking_service.runtime.logging_setup import log_context
from booking_service.use_cases.call_reports import record_call
from booking_service.use_cases.caller_greeting import greeting
from booking_service.use_cases.orgs import OrgInfo
from booking_service.use_cases.signatures import Verdict
from booking_service.use_cases.tool_calls import Answer
from booking_service.voice import pipeline, replies
from booking_service.voice.http import instrument, read_body
from booking_service.voice.invocation import usable_id
from booking_service.voice.pipeline import Confirmation
from booking_service.voice.vapi.answer import answer_all, results_body, too_many_calls
from booking_service.voice.vapi.assistant_request import answer_body as assistant_answer
from booking_service.voice.vapi.auth import (
    check_signature,
    keep_answer,
    org_with_hmac,
    org_with_secret,
)
from booking_service.voice.vapi.call_report import call_end
from booking_service.voice.vapi.envelope import PLATFORM, BadEnvelope, Envelope, parse

bp = Blueprint("vapi", __name__, url_prefix="/api/vapi")
instrument(bp, "vapi_tools")
log = logging.getLogger(__name__)

FindOrg = Callable[[ConnectionScope, bool], OrgInfo | None]


@bp.post("/tools")
def tools():
    """Answer a VAPI server message (Bearer / X-Vapi-Secret credential)."""
    return _serve(runtime(), org_with_secret, cached=True)


@bp.post("/tools/<int:org_id>")
def signed_tools(org_id: int):
    """The same for VAPI's HMAC credential, which carries no bearer secret: the URL names the
    organization and only a valid signature with its key is accepted. The organization is
    read afresh every time (its version with it), so the catalogue and opening hours kept for
    that version may be used."""
    return _serve(runtime(), lambda scope, use_cache: org_with_hmac(scope, org_id), cached=True)


def _serve(rt: Runtime, find_org: FindOrg, cached: bool = False):
    """Answer a webhook request; `cached`: its units of work may use the organization cache
    (and find_org is asked to use it first, where it can)."""
    started = g.arrived
    with log_context(request_id=g.request_id):
        body = read_body(rt.settings.max_body_bytes)  # 413 before any database work
        if pipeline.queued_too_long(rt, started):
            log.warning("request queued past its budget; answered without running it")
            return answer_all(body, replies.OUT_OF_TIME)

        def respond(scope: ConnectionScope, use_cache: bool, answered: tuple[Answer, ...]):
            def find(s: ConnectionScope) -> OrgInfo | None:
                return find_org(s, use_cache)

            return _authenticated(rt, scope, find, body, started, answered)

        return pipeline.serve(rt, PLATFORM, started, respond, cached=cached)


def _authenticated(
    rt: Runtime,
    scope: ConnectionScope,
    find_org: Callable[[ConnectionScope], OrgInfo | None],
    body: bytes,
    started: float,
    answered: tuple[Answer, ...] = (),
):
    """Authenticate, parse, and answer each tool call on the request's connection."""
    verdict = Verdict()
    try:
        org = find_org(scope)
        if org is not None and org.hmac_key:
            verdict = check_signature(rt, scope, org.id, org.hmac_key, body)
            if verdict.problem:
                log.info("rejected request: %s", verdict.problem)
                org = None
    except Exception as exc:
        return answer_all(body, pipeline.unauthenticated_sentence(exc))
    if org is None:
        log.info("rejected request: missing or invalid credentials")
        return error_response(401, "Missing or invalid credentials.")
    if verdict.stored_answer is not None:
        # A repeat of a signed request that was answered: the same answer, nothing run.
        return jsonify(verdict.stored_answer)
    confirmation = Confirmation()
    response = _respond(rt, scope, org, body, started, verdict, confirmation, answered)
    try:
        pipeline.confirm_cached(scope, org, confirmation)
    except StaleOrganization:
        raise
    except Exception as exc:
        return answer_all(body, pipeline.unauthenticated_sentence(exc))
    return response


def _respond(
    rt: Runtime,
    scope: ConnectionScope,
    org: OrgInfo,
    body: bytes,
    started: float,
    verdict: Verdict,
    confirmation: Confirmation,
    answered: tuple[Answer, ...] = (),
):
    """Parse and answer an authenticated request (`answered`: the first tool calls' answers,
    already committed by an earlier pass over the same request)."""
    try:
        envelope = parse(body)
    except BadEnvelope as exc:
        return error_response(400, str(exc))
    header_call_id = usable_id(request.headers.get("X-Call-Id"))
    call_id = envelope.vapi_call_id or header_call_id
    with log_context(org_id=org.id, call_id=call_id):
        if envelope.type == "end-of-call-report":
            return _report(scope, org, body, header_call_id)
        if envelope.type == "assistant-request":
            return _assistant(scope, org, envelope)
        if envelope.type != "tool-calls":
            return jsonify({})
        refused = too_many_calls(envelope)
        if refused is not None:
            return refused
        outcome = pipeline.answer(
            rt,
            scope,
            org,
            envelope.invocations(org, call_id),
            started=started,
            confirmation=confirmation,
            answered=answered,
        )
        result = results_body(envelope.calls, outcome.answers)
        if outcome.ran and verdict.signature is not None:
            keep_answer(scope, org.id, verdict.signature, result)
        return jsonify(result)


def _report(scope: ConnectionScope, org: OrgInfo, body: bytes, header_call_id: str | None):
    """Store the end-of-call report once (VAPI sends it once and never retries: duplicates
    that happen anyway change nothing)."""
    report = call_end(body, header_call_id)
    if report is None:
        return error_response(400, "The end-of-call report has no call id.")
    try:
        record_call(scope.uow(), org.id, report)
    except (DatabaseUnavailable, OutOfTime):
        log.exception("could not store the end-of-call report: database unavailable")
        return error_response(503, "The report could not be stored; please send it again.")
    return jsonify({})


def _assistant(scope: ConnectionScope, org: OrgInfo, envelope: Envelope):
    """The organization's assistant with today's date and, for a verified caller, their name
    and next appointment."""
    try:
        found = greeting(scope.uow(), org, envelope.verified_caller(org), utc_now())
    except (DatabaseUnavailable, OutOfTime):
        log.exception("could not answer assistant-request: database unavailable")
        return jsonify({"error": "The booking service is not reachable right now."})
    return jsonify(assistant_answer(found))
