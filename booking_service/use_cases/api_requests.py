"""Answering a REST POST exactly once per Idempotency-Key (the tool-call ledger's pattern).

The key is claimed first, in the transaction that then makes the change and records the
answer: a repeat with the same request gets the stored status and body and changes nothing;
a concurrent repeat waits for the first (the unique index) and then gets its answer; the same
key with another request is refused (IdempotencyKeyReused) without running anything. Keys are
per API key, kept at least a day (the worker forgets older ones, see forget_api_requests).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from booking_service.domain.errors import (
    DatabaseUnavailable,
    IdempotencyKeyReused,
    InputError,
    LockTimeout,
    Refusal,
)
from booking_service.persistence.unit_of_work import AbstractUnitOfWork

log = logging.getLogger(__name__)

# How long an answer is kept for its repeats: the issue asks for at least 24 hours.
RETENTION = timedelta(hours=48)
# A concurrent repeat waits for the first at most lock_timeout per attempt.
CLAIM_ATTEMPTS = 3


@dataclass(frozen=True)
class ApiAnswer:
    """An HTTP status and JSON body, as first answered."""

    status: int
    body: dict
    repeated: bool = False


@dataclass(frozen=True)
class RequestKey:
    """Whose request, under which Idempotency-Key, and the fingerprint of what it asked."""

    org_id: int
    api_key_id: int
    idempotency_key: str
    fingerprint: str


def request_fingerprint(method: str, path: str, body: object) -> str:
    """SHA-256 of the method, path and canonical JSON body."""
    canonical = json.dumps(
        [method.upper(), path, body], sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def answer_request_once(
    uow: AbstractUnitOfWork,
    key: RequestKey,
    perform: Callable[[AbstractUnitOfWork], ApiAnswer],
    *,
    refused: Callable[[Exception], ApiAnswer],
) -> ApiAnswer:
    """Run `perform` (a step) once per key, in one transaction with the stored answer.

    Opens and commits its own transaction. A Refusal or InputError from `perform` rolls its
    effects back to a savepoint; `refused` renders it and that answer is kept like any other,
    so a repeat gets the same refusal. IdempotencyKeyReused when the key was used for another
    request; DatabaseUnavailable when a concurrent first request holds the key too long.
    """
    for attempt in range(1, CLAIM_ATTEMPTS + 1):
        try:
            return _answer_once(uow, key, perform, refused)
        except LockTimeout:
            log.info("a request with the same Idempotency-Key is still running (wait %d)", attempt)
    raise DatabaseUnavailable("a request with the same Idempotency-Key is still running")


def _answer_once(
    uow: AbstractUnitOfWork,
    key: RequestKey,
    perform: Callable[[AbstractUnitOfWork], ApiAnswer],
    refused: Callable[[Exception], ApiAnswer],
) -> ApiAnswer:
    with uow:
        if not uow.api_requests.claim(
            key.org_id, key.api_key_id, key.idempotency_key, key.fingerprint
        ):
            stored = uow.api_requests.get(key.api_key_id, key.idempotency_key)
            if stored is None or stored.status is None or stored.answer is None:
                raise RuntimeError("an idempotency record without an answer")  # pragma: no cover
            if stored.fingerprint != key.fingerprint:
                log.warning("Idempotency-Key reused for another request")
                raise IdempotencyKeyReused()
            log.info("repeated request: returning the stored answer")
            return ApiAnswer(stored.status, stored.answer, repeated=True)
        try:
            with uow.savepoint():
                answer = perform(uow)
        except (Refusal, InputError) as exc:
            answer = refused(exc)
        uow.api_requests.record(key.api_key_id, key.idempotency_key, answer.status, answer.body)
        uow.commit()
        return answer


def forget_api_requests(uow: AbstractUnitOfWork, now: datetime) -> int:
    """Drop the answers kept past RETENTION; how many. Run by the worker's housekeeping."""
    with uow:
        gone = uow.api_requests.forget(now - RETENTION)
        uow.commit()
    return gone
