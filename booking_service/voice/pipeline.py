"""The platform-neutral tool pipeline: one request's invocations, answered in order.

A voice platform's edge (voice/vapi/, voice/retell/, voice/elevenlabs/) does three things, and
the pipeline does everything between them:

1. **Authenticate.** Read the platform's credential (a bearer secret, an HMAC signature over
   the raw body, ...) and find the organization with the use cases in use_cases/orgs.py.
   No credential: 401. Authentication that fails for an outage or the time limit is answered
   with `unauthenticated_sentence(exc)` for every call, never with the facts.
2. **Parse.** Turn the platform's body into `Invocation`s (voice/invocation.py): platform,
   organization, call id, invocation key, tool name, arguments (an object, or None when
   unreadable) and the verified caller number (a phone call's caller ID, normalized with
   `normalize_phone(number, org.phone_region)`; None for anything that is only a claim).
   Where the platform has no per-invocation id (Retell, ElevenLabs), the key is
   `invocation_key(platform, call_id, tool, arguments)`, a hash of the four, so a retry of
   the same body replays the stored answer.
3. **Answer.** Shape the `Answer`s (a result string, or an error sentence to speak) the way the
   platform expects them, in order, with the status it listens to (VAPI drops non-200s).

The pipeline owns the rest: the request's budget and commit limit (`serve`, `answer`), the
organization cache's stale-version retry (`serve`), per-organization admission, the tool
registry and argument schemas (voice/tools.py, voice/schemas.py), the ledger that answers an
invocation key once (use_cases/tool_calls.py), the wording of refusals and replies
(voice/refusals.py, voice/replies.py), and the metrics and log line of every tool call.
The edge's shared HTTP helpers (request id, arrival time, body limit) are in voice/http.py.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from flask import current_app

from booking_service.domain.errors import DatabaseUnavailable, OutOfTime, StaleOrganization
from booking_service.domain.times import utc_now
from booking_service.persistence.secrets_box import SecretsUnavailable
from booking_service.persistence.unit_of_work import ConnectionScope
from booking_service.runtime.extensions import Runtime
from booking_service.runtime.logging_setup import log_context
from booking_service.runtime.metrics import DATABASE_ERRORS, TOOL_CALLS
from booking_service.use_cases.orgs import OrgInfo, confirm_org
from booking_service.use_cases.tool_calls import Answer
from booking_service.voice import replies
from booking_service.voice.invocation import Invocation
from booking_service.voice.tools import TOOLS, Confirmation, ToolContext, run_tool

__all__ = [
    "Answered",
    "Confirmation",
    "answer",
    "answer_one",
    "confirm_cached",
    "queued_too_long",
    "serve",
    "unauthenticated_sentence",
]

log = logging.getLogger(__name__)

R = TypeVar("R")

# A model in a loop can pack many calls into one message; each costs a transaction.
MAX_CALLS_PER_REQUEST = 20


def queued_too_long(rt: Runtime, started: float) -> bool:
    """Whether the request waited past its whole budget before a thread was free: then every
    call is answered OUT_OF_TIME at once, without a transaction (the platform or the proxy
    may give up on it any moment)."""
    return time.monotonic() > started + rt.settings.request_budget_s


def serve(
    rt: Runtime,
    platform: str,
    started: float,
    respond: Callable[[ConnectionScope, bool, tuple[Answer, ...]], R],
    *,
    cached: bool = False,
) -> R:
    """Run `respond(scope, use_cache, answered)` on one pooled connection for the request.

    Nothing of it commits after REQUEST_COMMIT_LIMIT_S from `started` (below nginx's 19 s): a
    change the caller was never told about must not stand. `cached`: its units of work may
    use the organization cache; when a cached organization turns out stale, `respond` runs
    again without the cache, given the answers already committed (`answered`).
    """
    commit_by = started + rt.settings.request_commit_limit_s
    with rt.connection_scope(source=platform, commit_by=commit_by, cached=cached) as scope:
        try:
            return respond(scope, cached, ())
        except StaleOrganization as exc:
            # The tool calls answered before the change was seen committed keep their
            # answers (run again, one without a call id would be refused as a reused id);
            # the rest runs again with the organization read afresh.
            log.info("the cached organization changed; the request runs again")
            rt.org_cache.forget(exc.org_id)
            return respond(scope, False, exc.answered)


def answer_one(
    rt: Runtime,
    scope: ConnectionScope,
    org: OrgInfo,
    invocation: Invocation,
    *,
    started: float,
    answered: tuple[Answer, ...],
    respond: Callable[[Answer], R],
    unauthenticated: Callable[[str], R],
) -> R:
    """Answer a platform's single tool call (Retell, ElevenLabs: one invocation per request)
    and confirm a cached organization before that answer leaves; `respond` and
    `unauthenticated` are the platform's answer shapes."""
    confirmation = Confirmation()
    outcome = answer(
        rt,
        scope,
        org,
        [invocation],
        started=started,
        confirmation=confirmation,
        answered=answered,
    )
    try:
        confirm_cached(scope, org, confirmation)
    except StaleOrganization:
        raise
    except Exception as exc:
        return unauthenticated(unauthenticated_sentence(exc))
    return respond(outcome.answers[0])


def unauthenticated_sentence(exc: Exception) -> str:
    """What every call hears when authenticating failed (confirming a cached organization's
    version is part of it): nobody is authenticated to hear more. Call it from the `except`
    block that caught `exc`; under TESTING an unexpected exception is raised again."""
    if isinstance(exc, OutOfTime):
        log.warning("authentication rolled back: the request ran past the commit limit")
        return replies.OUT_OF_TIME
    if isinstance(exc, SecretsUnavailable):
        log.error("authentication failed: the stored HMAC key cannot be opened (SECRET_KEY?)")
        return replies.UNAVAILABLE
    if isinstance(exc, DatabaseUnavailable):
        log.exception("authentication failed: database unavailable")
        DATABASE_ERRORS.labels("authentication").inc()
        return replies.UNAVAILABLE
    if current_app.testing:
        raise exc
    log.exception("authentication failed unexpectedly")
    return replies.UNAVAILABLE


def confirm_cached(scope: ConnectionScope, org: OrgInfo, confirmation: Confirmation) -> None:
    """Read a cached organization's version when nothing of the request did (no invocation
    was claimed), before anything taken from the cache is answered; raises StaleOrganization
    (for `serve`) or what reading raised (for `unauthenticated_sentence`)."""
    if org.cached and not confirmation.done:
        confirm_org(scope.reader(), org)


@dataclass(frozen=True)
class Answered:
    """One answer per invocation, in order. `ran` is False when the organization was over its
    share of this worker and the rest were answered BUSY without running: such answers must
    not be kept for the request's repeats."""

    answers: list[Answer]
    ran: bool = True


def answer(
    rt: Runtime,
    scope: ConnectionScope,
    org: OrgInfo,
    invocations: Sequence[Invocation],
    *,
    started: float,
    confirmation: Confirmation,
    answered: tuple[Answer, ...] = (),
) -> Answered:
    """Answer each invocation of an authenticated request in order, within the budget.

    The first `answered` invocations keep the answers they were given (committed by an earlier
    pass over this request, see `serve`); StaleOrganization carries the answers given so far.
    """
    with rt.admission.enter(org.id) as admitted:
        if not admitted:
            log.warning("organization over its share of this worker; answered busy")
            busy = [replies.error(replies.BUSY) for _ in invocations[len(answered) :]]
            return Answered([*answered, *busy], ran=False)
        return Answered(_run(rt, scope, invocations, started, confirmation, answered))


def _run(
    rt: Runtime,
    scope: ConnectionScope,
    invocations: Sequence[Invocation],
    started: float,
    confirmation: Confirmation,
    answered: tuple[Answer, ...],
) -> list[Answer]:
    deadline = started + rt.settings.request_budget_s
    now = utc_now()
    request_key = uuid.uuid4().hex  # the change limit's key of a call without call or caller
    answers = list(answered)
    for index, invocation in enumerate(invocations):
        if index < len(answered):
            continue
        if index >= MAX_CALLS_PER_REQUEST:
            answers.append(replies.error(replies.TOO_MANY))
        elif time.monotonic() > deadline:
            # VAPI gives up after 20 s; an answer in time beats a complete one too late.
            answers.append(replies.error(replies.OUT_OF_TIME))
        else:
            ctx = ToolContext(
                org=invocation.org,
                uow_factory=scope.uow,
                verified_number=invocation.caller_number,
                call_id=invocation.call_id,
                now=now,
                max_changes_per_call=rt.settings.max_changes_per_call,
                deadline=deadline,
                request_key=request_key,
                confirmation=confirmation,
            )
            try:
                answers.append(_answer_one(ctx, invocation))
            except StaleOrganization as exc:
                exc.answered = tuple(answers)
                raise
    return answers


def _answer_one(ctx: ToolContext, invocation: Invocation) -> Answer:
    started = time.perf_counter()
    with log_context(tool_call_id=invocation.key, tool=invocation.tool):
        outcome = "error"
        try:
            answer = run_tool(ctx, invocation)
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
            return replies.error(replies.OUT_OF_TIME)
        except StaleOrganization:
            outcome = "stale"  # rolled back; the request runs again (serve)
            raise
        except Exception:
            if current_app.testing:
                raise
            log.exception("tool call failed unexpectedly")
            return replies.error(replies.UNEXPECTED)
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            tool = invocation.tool if invocation.tool in TOOLS else "unknown"
            TOOL_CALLS.labels(tool, outcome).inc()
            log.info(
                "tool call answered: outcome=%s duration_ms=%.1f",
                outcome,
                duration_ms,
                extra={"outcome": outcome, "duration_ms": duration_ms},
            )
