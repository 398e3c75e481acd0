"""Answering a VAPI tool call exactly once.

The ledger row is claimed first and written in the same transaction as the tool's effects, so
a repeated toolCallId returns the stored answer and creates nothing, and a concurrent duplicate
waits for the first and returns its answer. A stored answer goes back only to the same
organization, VAPI call and caller that produced it: any other reuse of the id is refused
without running anything or revealing anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from booking_service.domain.errors import (
    ChangeLimitReached,
    DatabaseUnavailable,
    LockTimeout,
    Refusal,
    RequestIdReused,
    StaleOrganization,
)
from booking_service.persistence.repositories.ledger import LedgerEntry, LedgerKey
from booking_service.persistence.unit_of_work import AbstractUnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """What VAPI gets for one tool call: a result string or a speakable error sentence."""

    result: str | None = None
    error: str | None = None

    def as_json(self) -> dict:
        return {"error": self.error} if self.error is not None else {"result": self.result}

    @classmethod
    def from_json(cls, stored: dict) -> Answer:
        if "error" in stored:
            return cls(error=stored["error"])
        return cls(result=stored["result"])


# The ledger's key of one tool call: organization, id, VAPI call, caller, limit key, tool name
# and the fingerprint of its arguments.
ToolCallKey = LedgerKey


def may_see(key: ToolCallKey, stored: LedgerEntry) -> bool:
    """The stored answer was produced for this same platform, call and caller. Without a call id
    nothing proves it was the same call, so nothing is given back."""
    return (
        stored.fingerprint == key.fingerprint
        and stored.platform == key.platform
        and key.vapi_call_id is not None
        and stored.vapi_call_id == key.vapi_call_id
        and stored.caller == key.caller
    )


def fingerprint(tool_name: str, arguments: object) -> str:
    """SHA-256 of the tool name and canonical JSON arguments."""
    canonical = json.dumps(
        [tool_name, arguments], sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


# A tool call waits for a duplicate of itself (or for another tool call of the same VAPI
# call) at most lock_timeout per attempt; the other can legitimately take longer (its own lock
# waits), so it tries this many times, within the request's budget, before giving up with
# "not reachable".
CLAIM_ATTEMPTS = 3


@dataclass(frozen=True)
class ChangeLimit:
    """At most `limit` of the tools `counted` per limit key (VAPI call, caller or request)."""

    limit: int
    counted: tuple[str, ...]


def answer_once(
    uow: AbstractUnitOfWork,
    key: ToolCallKey,
    perform: Callable[[AbstractUnitOfWork], Answer],
    *,
    refused: Callable[[Refusal], Answer],
    change_limit: ChangeLimit,
    deadline: float | None = None,
) -> Answer:
    """Run `perform` in one transaction with the ledger, unless this call was answered before.

    Opens and commits its own transaction (`perform` is a step inside it and never commits).
    Past the change limit of the key, ChangeLimitReached is the refusal: the count is read
    with the answer, after `perform`, whose effects are then rolled back. A Refusal from
    `perform` rolls its effects back to a savepoint taken after the claim; `refused` renders
    it, and the answer is recorded like any other: refused changes count toward the change
    limit (under the same lock as the rest), and a repeat of the id gets the same refusal.
    A reuse of the id by another call or caller raises RequestIdReused, running nothing.
    Waiting for a duplicate stops at `deadline` (time.monotonic()), so the caller still hears
    an answer in time. With `key.org_version` (a cached organization), the claim confirms that
    version or raises StaleOrganization, with everything rolled back.
    """
    for attempt in range(1, CLAIM_ATTEMPTS + 1):
        started = time.monotonic()
        try:
            return _answer_once(uow, key, perform, refused, change_limit)
        except LockTimeout:
            waited = time.monotonic() - started
            log.info(
                "a duplicate or another change under the same limit is still running (wait %d)",
                attempt,
            )
            # Wait again only if a wait as long as this one still ends before the deadline.
            if deadline is not None and time.monotonic() + waited > deadline:
                break
    raise DatabaseUnavailable("a duplicate of this tool call is still running")


def _confirm(key: ToolCallKey, current: int | None) -> None:
    """A cached organization (key.org_version) must still be what is stored: the claim read
    its version, so this costs no statement. Raising rolls the claim back with the rest."""
    if key.org_version is not None and key.org_version != current:
        raise StaleOrganization(key.org_id)


def _answer_once(
    uow: AbstractUnitOfWork,
    key: ToolCallKey,
    perform: Callable[[AbstractUnitOfWork], Answer],
    refused: Callable[[Refusal], Answer],
    change_limit: ChangeLimit,
) -> Answer:
    with uow:
        claimed = uow.tool_calls.claim(key)
        if claimed is not None:
            _confirm(key, claimed.org_version)
        else:
            stored = uow.tool_calls.get(key.org_id, key.tool_call_id)
            if stored is None or stored.answer is None:  # pragma: no cover - committed with answer
                raise RuntimeError("ledger row without an answer")
            _confirm(key, stored.org_version)
            if not may_see(key, stored):
                log.warning("tool call id reused by another request, call or caller")
                raise RequestIdReused()
            log.info("repeated tool call: returning the stored answer")
            return Answer.from_json(stored.answer)
        try:
            with uow.savepoint():
                answer = perform(uow)
                # The change count comes back with the stored answer, in one round trip (it
                # is read under the claim's lock, so parallel calls cannot all pass). Past
                # the limit the savepoint takes back what perform did, and the answer.
                if _record(uow, key, answer, change_limit) > change_limit.limit:
                    raise ChangeLimitReached(change_limit.limit)
        except Refusal as exc:
            answer = refused(exc)
            made = _record(uow, key, answer, change_limit)
            if made > change_limit.limit:  # `made` counts this call's own claim
                log.warning(
                    "change limit reached (%d): this call's changes were rolled back",
                    change_limit.limit,
                )
                if not isinstance(exc, ChangeLimitReached):
                    answer = refused(ChangeLimitReached(change_limit.limit))
                    _record(uow, key, answer, change_limit)
        uow.commit()
        return answer


def _record(
    uow: AbstractUnitOfWork, key: ToolCallKey, answer: Answer, change_limit: ChangeLimit
) -> int:
    """Store the answer; return the changes made under the key's limit (see record_answer)."""
    return uow.tool_calls.record_answer(
        key.org_id,
        key.tool_call_id,
        answer.as_json(),
        limit_key=key.limit_key,
        tool_names=change_limit.counted,
    )
