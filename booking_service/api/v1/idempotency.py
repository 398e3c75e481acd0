"""Every POST of /api/v1 runs once per Idempotency-Key (use_cases/api_requests.py): a repeat
gets the first answer and status; the key with another request is a 422."""

from __future__ import annotations

from collections.abc import Callable

from flask import request

from booking_service.api.v1.blueprint import caller, idempotency_key, uow
from booking_service.api.v1.problems import refusal_problem, respond
from booking_service.domain.errors import IdempotencyKeyReused
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases.api_requests import (
    ApiAnswer,
    RequestKey,
    answer_request_once,
    request_fingerprint,
)


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
