"""A voice platform's signed post-call webhook (Retell's `call_analyzed`, ElevenLabs'
`post_call_transcription`): the signature decides, the report is stored once per call
(use_cases/call_reports.py), and the platform's other event types are acknowledged.

A bad or missing signature is 401 and stores nothing; an unreadable event 400; an outage 503,
so that the platform sends it again. VAPI's end-of-call report arrives on its tool endpoint
and is handled there (voice/vapi/blueprint.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import g, jsonify

from booking_service.api.errors import error_response
from booking_service.domain.errors import DatabaseUnavailable
from booking_service.persistence.unit_of_work import ConnectionScope
from booking_service.runtime.extensions import Runtime, runtime
from booking_service.runtime.logging_setup import log_context
from booking_service.use_cases.call_reports import CallEnd, record_call
from booking_service.use_cases.voice_platforms import OrgPlatform
from booking_service.voice.http import read_body

log = logging.getLogger(__name__)


def receive(
    org_id: int,
    *,
    platform: str,
    name: str,
    signed_org: Callable[[Runtime, ConnectionScope, int, bytes], OrgPlatform | None],
    parse_event: Callable[[bytes], tuple[str | None, CallEnd | None]],
    bad_report: type[Exception],
):
    """Answer one post-call event for the organization the URL names. `platform`: the ledger's
    name (the events' source); `name`: the platform as logs say it; `signed_org`: the
    organization when the body is signed with its key, else None;
    `parse_event`: (event type, the report to store or None), raising `bad_report`."""
    rt = runtime()
    with log_context(request_id=g.request_id):
        body = read_body(rt.settings.max_body_bytes)
        with rt.connection_scope(source=platform) as scope:
            try:
                found = signed_org(rt, scope, org_id, body)
            except DatabaseUnavailable:
                log.exception("could not check a %s event's signature: database unavailable", name)
                return error_response(503, "Not reachable; please send it again.")
            if found is None:
                log.info("rejected %s event: unknown organization or bad signature", name)
                return error_response(401, "Missing or invalid signature.")
            try:
                _, report = parse_event(body)
            except bad_report as exc:
                return error_response(400, str(exc))
            if report is None:
                return jsonify({})
            with log_context(org_id=found.org.id, call_id=report.call_id):
                try:
                    record_call(scope.uow(), found.org.id, report)
                except DatabaseUnavailable:
                    log.exception("could not store a %s call report: database unavailable", name)
                    return error_response(503, "Not stored; please send it again.")
            return jsonify({})
