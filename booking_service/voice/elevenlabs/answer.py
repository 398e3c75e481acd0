"""ElevenLabs takes any JSON answer: ours is `{"result": sentence, ...structured fields}`
(voice/replies.structured), always 200 so the agent hears it (error mode passthrough)."""

from __future__ import annotations

from flask import Response, jsonify

from booking_service.use_cases.tool_calls import Answer
from booking_service.voice import replies


def respond(answer: Answer) -> Response:
    return jsonify(replies.structured(answer))


def unauthenticated(sentence: str) -> Response:
    """What an unauthenticated request hears when authenticating failed (an outage, the time
    limit): nothing is read or written for it."""
    return respond(replies.error(sentence))
