"""POST /api/vapi/tools: authenticate, parse, answer every tool call in order.

Business outcomes are always HTTP 200 (VAPI ignores the body of any other status, so the caller
would hear nothing); only a missing credential (401), an unreadable body (400) or an oversized
one (413) get another status.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from flask import Blueprint, abort, current_app, g, jsonify, request

from booking_service.api.errors import error_response
from booking_service.domain.errors import (
    DatabaseUnavailable,
    NotFound,
    OutOfTime,
    StaleOrganization,
)
from booking_service.domain.normalize import normalize_phone
from booking_service.domain.times import utc_now
from booking_service.persistence.secrets_box import SecretsUnavailable
from booking_service.persistence.unit_of_work import ConnectionScope
from booking_service.runtime.extensions import runtime
from booking_service.runtime.logging_setup import log_context
from booking_service.runtime.metrics import DATABASE_ERRORS, REQUEST_LATENCY, TOOL_CALLS
from booking_service.runtime.proxy import TRUSTED_KEY
from booking_service.use_cases.orgs import OrgInfo, authenticate, confirm_org, get_org
from booking_service.use_cases.signatures import Verdict, store_answer, verify
from booking_service.use_cases.tool_calls import Answer
from booking_service.voice import replies
from booking_service.voice.tools import TOOLS, Confirmation, ToolContext, run_tool
from booking_service.voice.vapi.envelope import (
    BadEnvelope,
    Envelope,
    ToolInvocation,
    parse,
    usable_id,
)

bp = Blueprint("vapi", __name__, url_prefix="/api/vapi")
log = logging.getLogger(__name__)

# A model in a loop can pack many calls into one message; each costs a transaction.
MAX_CALLS_PER_REQUEST = 20
# Past this many calls a message is refused outright (400): answering each one, even with a
# short refusal, let a 1 MiB body of 28,000 calls produce a 2.8 MB answer.
MAX_CALLS_PER_MESSAGE = 50
# A request id we log and echo: short and plain, or we make our own (a 7 KB id was echoed,
# and spaces in one could forge fields in a log line).
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# PostgreSQL's bigint: a larger id in the URL names no organization (and must not reach SQL).
_MAX_ID = 2**63 - 1


def _credential() -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    secret = request.headers.get("X-Vapi-Secret", "").strip()
    return secret or None


@bp.before_request
def _request_id():
    given = request.headers.get("X-Request-Id", "")
    g.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex[:16]
    g.started = time.perf_counter()
    g.arrived = arrival(
        request.headers.get("X-Request-Start") if request.environ.get(TRUSTED_KEY) else None
    )


# A clock reading further in the past than this is not an arrival time (a broken header).
_MAX_QUEUE_AGE_S = 3600.0


def arrival(header: str | None) -> float:
    """When the request reached the edge, on the time.monotonic() clock.

    nginx sends `X-Request-Start: t=<seconds since the epoch, with milliseconds>` (only believed
    from a trusted proxy). Time spent queued behind busy worker threads then counts against the
    budget: VAPI and nginx started counting at arrival, not when a thread picked the request up.
    Without the header, or with one that is unreadable or ahead of our clock, it is now.
    """
    now = time.monotonic()
    if not header:
        return now
    try:
        sent = float(header.strip().removeprefix("t="))
    except ValueError:
        return now
    if sent > 1e14:  # microseconds (some proxies), then milliseconds
        sent /= 1e6
    elif sent > 1e11:
        sent /= 1e3
    queued = time.time() - sent
    if not 0 < queued < _MAX_QUEUE_AGE_S:  # NaN and inf fail this too
        return now
    return now - queued


@bp.after_request
def _observe(response):
    REQUEST_LATENCY.labels("vapi_tools").observe(time.perf_counter() - g.started)
    return response


def _body(limit: int) -> bytes:
    """The request body, or 413 when it exceeds `limit` (chunked bodies included)."""
    if (request.content_length or 0) > limit:
        abort(413)
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        abort(413)
    return body


def _check_signature(rt, scope: ConnectionScope, org_id: int, key: str, body: bytes) -> Verdict:
    return verify(
        scope.uow(),
        org_id=org_id,
        # Sealed with SECRET_KEY (a key stored before sealing existed is used as it is).
        key=rt.secrets.open_or_plain(key),
        body=body,
        signature=request.headers.get("X-Signature"),
        timestamp=request.headers.get("X-Timestamp"),
        now=utc_now(),
        window=timedelta(seconds=rt.settings.hmac_window_s),
    )


@bp.post("/tools")
def tools():
    """Answer a VAPI server message (Bearer / X-Vapi-Secret credential)."""

    def org_with_secret(scope: ConnectionScope, use_cache: bool) -> OrgInfo | None:
        cache = scope.org_cache if use_cache else None
        return authenticate(scope.reader(), _credential(), cache)

    return _serve(runtime(), org_with_secret, cached=True)


@bp.post("/tools/<int:org_id>")
def signed_tools(org_id: int):
    """The same for VAPI's HMAC credential, which carries no bearer secret: the URL names the
    organization and only a valid signature with its key is accepted."""

    def org_with_hmac(scope: ConnectionScope, use_cache: bool) -> OrgInfo | None:
        if not 0 < org_id <= _MAX_ID:
            return None
        try:
            org = get_org(scope.reader(), org_id)
        except NotFound:
            return None
        return org if org.hmac_key else None

    return _serve(runtime(), org_with_hmac)


def _serve(rt, find_org: Callable[[ConnectionScope, bool], OrgInfo | None], cached=False):
    """Answer a webhook request; `cached`: its units of work may use the organization cache
    (and find_org is asked to use it first)."""
    started = g.arrived
    with log_context(request_id=g.request_id):
        limit = rt.settings.max_body_bytes
        body = _body(limit)  # 413 before any database work
        if time.monotonic() > started + rt.settings.request_budget_s:
            # Queued past its budget before a thread was free: answer "ask again" at once,
            # without opening a transaction (nginx or VAPI may give up on it any moment).
            log.warning("request queued past its budget; answered without running it")
            return _answer_all(body, OUT_OF_TIME)
        # Authentication and every tool call of this request share one pooled connection.
        # Nothing of it commits after REQUEST_COMMIT_LIMIT_S (below nginx's 19 s): a change
        # the caller was never told about must not stand.
        commit_by = started + rt.settings.request_commit_limit_s
        with rt.connection_scope(source="vapi", commit_by=commit_by, cached=cached) as scope:
            try:
                return _authenticated(rt, scope, lambda s: find_org(s, cached), body, started)
            except StaleOrganization as exc:
                # The tool calls answered before the change was seen committed, and keep their
                # answers (run again, one without a VAPI call id would be refused as a reused
                # id); the rest runs again with the organization read afresh.
                log.info("the cached organization changed; the request runs again")
                rt.org_cache.forget(exc.org_id)
                return _authenticated(
                    rt, scope, lambda s: find_org(s, False), body, started, exc.answered
                )


def _authenticated(
    rt,
    scope: ConnectionScope,
    find_org,
    body: bytes,
    started: float,
    answered: tuple[Answer, ...] = (),
):
    """Authenticate, parse, and answer each tool call on the request's connection."""
    verdict = Verdict()
    try:
        org = find_org(scope)
        if org is not None and org.hmac_key:
            verdict = _check_signature(rt, scope, org.id, org.hmac_key, body)
            if verdict.problem:
                log.info("rejected request: %s", verdict.problem)
                org = None
    except Exception as exc:
        return _unauthenticated_answer(body, exc)
    if org is None:
        log.info("rejected request: missing or invalid credentials")
        return error_response(401, "Missing or invalid credentials.")
    if verdict.stored_answer is not None:
        # A repeat of a signed request that was answered: the same answer, nothing run.
        return jsonify(verdict.stored_answer)
    confirmation = Confirmation()
    response = _respond(rt, scope, org, body, started, verdict, confirmation, answered)
    if org.cached and not confirmation.done:
        # Nothing of this request read the organization's version yet (no tool call was
        # claimed): read it now, before anything taken from the cache is answered.
        try:
            confirm_org(scope.reader(), org)
        except StaleOrganization:
            raise
        except Exception as exc:
            return _unauthenticated_answer(body, exc)
    return response


def _unauthenticated_answer(body: bytes, exc: Exception):
    """The answer when authenticating failed (confirming a cached organization's version is
    part of it): the same spoken error for every tool call, since nobody is authenticated to
    hear more. Call it from the `except` block that caught `exc`."""
    if isinstance(exc, OutOfTime):
        log.warning("authentication rolled back: the request ran past the commit limit")
        return _answer_all(body, OUT_OF_TIME)
    if isinstance(exc, SecretsUnavailable):
        log.error("authentication failed: the stored HMAC key cannot be opened (SECRET_KEY?)")
        return _answer_all(body, replies.UNAVAILABLE)
    if isinstance(exc, DatabaseUnavailable):
        log.exception("authentication failed: database unavailable")
        DATABASE_ERRORS.labels("authentication").inc()
        return _answer_all(body, replies.UNAVAILABLE)
    if current_app.testing:
        raise exc
    log.exception("authentication failed unexpectedly")
    return _answer_all(body, replies.UNAVAILABLE)


def _respond(
    rt,
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
        if envelope.type != "tool-calls":
            return jsonify({})
        if len(envelope.calls) > MAX_CALLS_PER_MESSAGE:
            return error_response(
                400, f"At most {MAX_CALLS_PER_MESSAGE} tool calls in one message."
            )
        with rt.admission.enter(org.id) as admitted:
            if not admitted:
                log.warning("organization over its share of this worker; answered busy")
                busy = [replies.error(BUSY) for _ in envelope.calls[len(answered) :]]
                return _results(envelope.calls, [*answered, *busy])
            result = _run_calls(rt, scope, org, envelope, call_id, started, confirmation, answered)
        if verdict.signature is not None:
            _keep_answer(scope, org.id, verdict.signature, result)
        return jsonify(result)


def _keep_answer(scope: ConnectionScope, org_id: int, signature: str, answered: dict) -> None:
    """Store a signed request's answer for its repeats; the caller gets it either way."""
    try:
        store_answer(scope.uow(), org_id, signature, answered)
    except Exception:
        # Whatever went wrong (an outage, the time limit, a value PostgreSQL will not store),
        # the work is done and the caller must hear it: a repeat simply runs again.
        log.warning("could not keep the answer of a signed request; a repeat runs again")


def _run_calls(
    rt,
    scope: ConnectionScope,
    org: OrgInfo,
    envelope: Envelope,
    call_id,
    started: float,
    confirmation: Confirmation,
    answered: tuple[Answer, ...] = (),
):
    """Answer each tool call of an admitted request in order, within the budget; returns the
    response body. The first `answered` calls keep the answers they were given (committed by
    an earlier pass over this request); StaleOrganization carries the answers given so far."""
    deadline = started + rt.settings.request_budget_s
    ctx = ToolContext(
        org=org,
        uow_factory=scope.uow,
        # Only a phone call's caller ID is proof of who is calling; anything else that
        # names a number (a web call, a chat, a withheld or SIP caller) is a claim.
        verified_number=(
            normalize_phone(envelope.caller_number, org.phone_region)
            if envelope.is_phone_call
            else None
        ),
        vapi_call_id=call_id,
        now=utc_now(),
        max_changes_per_call=rt.settings.max_changes_per_call,
        deadline=deadline,
        confirmation=confirmation,
    )
    answers = list(answered)
    for index, call in enumerate(envelope.calls):
        if index < len(answered):
            continue
        if index >= MAX_CALLS_PER_REQUEST:
            answers.append(replies.error(TOO_MANY))
        elif time.monotonic() > deadline:
            # VAPI gives up after 20 s; an answer in time beats a complete one too late.
            answers.append(replies.error(OUT_OF_TIME))
        else:
            try:
                answers.append(_answer(ctx, call))
            except StaleOrganization as exc:
                exc.answered = tuple(answers)
                raise
    return _results_body(envelope.calls, answers)


TOO_MANY = "Too many requests at once; please ask again one at a time."
BUSY = "I'm handling several requests for this business right now; please ask again in a moment."
OUT_OF_TIME = "I ran out of time before I could do this one; please ask again."


def _results(calls: list[ToolInvocation], answers: list[Answer]):
    return jsonify(_results_body(calls, answers))


def _results_body(calls: list[ToolInvocation], answers: list[Answer]) -> dict:
    return {
        "results": [
            {
                # Always strings, as VAPI's schema has them (an integer id is echoed as
                # its digits, a missing one as "").
                "toolCallId": "" if call.reply_id is None else str(call.reply_id),
                "name": call.name or "",
                **answer.as_json(),
            }
            for call, answer in zip(calls, answers, strict=True)
        ]
    }


def _answer_all(body: bytes, sentence: str):
    """Answer every tool call with one spoken error, unauthenticated: without a database (or
    without time) we cannot authenticate, but the caller should still hear why.

    Tool calls get the error with HTTP 200 (VAPI drops other statuses); nothing is read or
    written, so nothing leaks to an unauthenticated sender. A wrong secret therefore gets this
    answer instead of 401 while the database is down.
    """
    try:
        envelope = parse(body)
    except BadEnvelope as exc:
        return error_response(400, str(exc))
    if envelope.type != "tool-calls":
        return jsonify({})
    if len(envelope.calls) > MAX_CALLS_PER_MESSAGE:
        return error_response(400, f"At most {MAX_CALLS_PER_MESSAGE} tool calls in one message.")
    return _results(envelope.calls, [replies.error(sentence) for _ in envelope.calls])


def _answer(ctx: ToolContext, call: ToolInvocation) -> Answer:
    started = time.perf_counter()
    with log_context(tool_call_id=call.id, tool=call.name):
        outcome = "error"
        try:
            answer = run_tool(ctx, call)
            outcome = "ok" if answer.error is None else "rejected"
            return answer
        except DatabaseUnavailable:
            log.exception("tool call failed: database unavailable")
            DATABASE_ERRORS.labels("tool_call").inc()
            outcome = "unavailable"
            return replies.error(replies.UNAVAILABLE)
        except OutOfTime:
            log.warning("tool call rolled back: its request ran past the commit limit")
            outcome = "late"
            return replies.error(OUT_OF_TIME)
        except StaleOrganization:
            outcome = "stale"  # rolled back; the request runs again (_serve)
            raise
        except Exception:
            if current_app.testing:
                raise
            log.exception("tool call failed unexpectedly")
            return replies.error(replies.UNEXPECTED)
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            tool = call.name if call.name in TOOLS else "unknown"
            TOOL_CALLS.labels(tool, outcome).inc()
            log.info(
                "tool call answered: outcome=%s duration_ms=%.1f",
                outcome,
                duration_ms,
                extra={"outcome": outcome, "duration_ms": duration_ms},
            )
