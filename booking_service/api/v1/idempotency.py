"""Every POST of /api/v1 runs once per Idempotency-Key (use_cases/api_requests.py): a repeat
gets the first answer and status; the key with another request is a 422."""

from __future__ import annotations

import re
from collections.abc import Callable

from flask import request

from booking_service.api.v1.blueprint import Rejected, caller, uow
from booking_service.api.v1.problems import problem, refusal_problem, respond
from booking_service.api.v1.schemas import IDEMPOTENCY_KEY_PATTERN
from booking_service.domain.errors import IdempotencyKeyReused
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases.api_requests import (
    ApiAnswer,
    RequestKey,
    answer_request_once,
    request_fingerprint,
)

HEADER = "Idempotency-Key"
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


def idempotency_key() -> str:
    """The request's Idempotency-Key; a 400 problem without a usable one."""
    key = request.headers.get(HEADER, "")
    if not key:
        raise Rejected(
            problem(
                400,
                "Idempotency-Key required",
                f"Send an {HEADER} header (a UUID).",
                kind="idempotency-key-missing",
            )
        )
    if not _KEY.match(key):
        raise Rejected(
            problem(
                400,
                "Bad Idempotency-Key",
                "Use 1 to 255 printable ASCII characters.",
                kind="idempotency-key-missing",
            )
        )
    return key


def answer_once(
    body: object,
    perform: Callable[[AbstractUnitOfWork], ApiAnswer],
):
    """Run `perform` once for this request's key (read before any work) and answer what the
    first request was answered; refusals are kept and repeated like any other answer."""
    key = idempotency_key()
    who = caller()
    request_key = RequestKey(
        org_id=who.org.id,
        api_key_id=who.key_id,
        idempotency_key=key,
        fingerprint=request_fingerprint(request.method, request.path, body),
    )
    try:
        answer = answer_request_once(
            uow(),
            request_key,
            perform,
            refused=lambda exc: ApiAnswer((doc := refusal_problem(exc, who.org))["status"], doc),
        )
    except IdempotencyKeyReused as exc:
        doc = refusal_problem(exc, who.org)
        return respond(doc["status"], doc)
    response = respond(answer.status, answer.body)
    if answer.repeated:
        response.headers["Idempotent-Replayed"] = "true"
    return response
