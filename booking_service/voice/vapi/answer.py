"""VAPI's answer shape: `200 {"results": [{toolCallId, name, result | error}]}`, one entry per
tool call in order (VAPI ignores the body of any other status: the caller would hear nothing)."""

from __future__ import annotations

from flask import Response, jsonify

from booking_service.api.errors import error_response
from booking_service.use_cases.tool_calls import Answer
from booking_service.voice import replies
from booking_service.voice.vapi.envelope import BadEnvelope, Envelope, ToolCall, parse

# Past this many calls a message is refused outright (400): answering each one, even with a
# short refusal, let a 1 MiB body of 28,000 calls produce a 2.8 MB answer.
MAX_CALLS_PER_MESSAGE = 50


def too_many_calls(envelope: Envelope) -> Response | None:
    """The 400 for a message with more tool calls than are answered, else None."""
    if len(envelope.calls) > MAX_CALLS_PER_MESSAGE:
        return error_response(400, f"At most {MAX_CALLS_PER_MESSAGE} tool calls in one message.")
    return None


def results_body(calls: list[ToolCall], answers: list[Answer]) -> dict:
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


def answer_all(body: bytes, sentence: str) -> Response:
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
    refused = too_many_calls(envelope)
    if refused is not None:
        return refused
    answers = [replies.error(sentence) for _ in envelope.calls]
    return jsonify(results_body(envelope.calls, answers))
