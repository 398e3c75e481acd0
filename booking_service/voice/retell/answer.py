"""Retell's answer shape: any 2xx with a JSON body (at most 15,000 characters) that goes to the
model: `{"result": the sentence to speak, ...the structured fields}` (voice/replies.structured)."""

from __future__ import annotations

import json

from flask import Response, jsonify

from booking_service.use_cases.tool_calls import Answer
from booking_service.voice import replies

# Retell passes at most this much of an answer to the model.
MAX_CHARACTERS = 15_000


def answer_body(answer: Answer) -> dict:
    """The JSON for one answer; a listing too long for Retell keeps only its sentence."""
    body = replies.structured(answer)
    if len(json.dumps(body, ensure_ascii=False)) > MAX_CHARACTERS:
        return {"result": body["result"][:MAX_CHARACTERS], "status": body.get("status")}
    return body


def respond(answer: Answer) -> Response:
    return jsonify(answer_body(answer))


def unauthenticated(sentence: str) -> Response:
    """What an unauthenticated request hears when authenticating failed (an outage, the time
    limit): nothing is read or written for it."""
    return respond(replies.error(sentence))
