"""Reading VAPI envelopes tolerantly, and speaking argument errors."""

from __future__ import annotations

import json

import pytest
from marshmallow import ValidationError

from booking_service.vapi.envelope import BadEnvelope, parse
from booking_service.vapi.schemas import BookAppointmentArgs, spoken_errors


def _body(message: dict) -> bytes:
    return json.dumps({"message": message}).encode()


def test_tool_call_list_wins_over_legacy_tool_calls():
    env = parse(
        _body(
            {
                "type": "tool-calls",
                "toolCallList": [{"id": "a", "function": {"name": "x", "arguments": {}}}],
                "toolCalls": [{"id": "b", "function": {"name": "y", "arguments": {}}}],
            }
        )
    )
    assert [c.id for c in env.calls] == ["a"]


def test_string_arguments_are_decoded():
    env = parse(
        _body(
            {
                "type": "tool-calls",
                "toolCalls": [{"id": "a", "function": {"name": "x", "arguments": '{"k": 1}'}}],
            }
        )
    )
    assert env.calls[0].arguments == {"k": 1}


@pytest.mark.parametrize("arguments", ["[1, 2]", "{broken", 42, ["a"]])
def test_arguments_that_are_not_an_object_are_marked_unreadable(arguments):
    env = parse(
        _body(
            {
                "type": "tool-calls",
                "toolCallList": [{"id": "a", "function": {"name": "x", "arguments": arguments}}],
            }
        )
    )
    assert env.calls[0].arguments is None


def test_caller_number_and_call_id_are_read():
    env = parse(
        _body({"type": "status-update", "call": {"id": "c1", "customer": {"number": "+1415"}}})
    )
    assert (env.type, env.caller_number, env.vapi_call_id, env.calls) == (
        "status-update",
        "+1415",
        "c1",
        [],
    )


@pytest.mark.parametrize(
    "body",
    [b"", b"null", b"[]", b'{"message": 1}', b"\xff", _body({"type": "tool-calls"})],
)
def test_unusable_bodies_are_bad_envelopes(body):
    with pytest.raises(BadEnvelope):
        parse(body)


def test_spoken_errors_name_the_fields_in_plain_words():
    with pytest.raises(ValidationError) as info:
        BookAppointmentArgs().load({"durationMinutes": "soon"})

    sentence = spoken_errors(info.value)
    assert sentence.startswith("I could not make the booking because")
    assert "the caller's name is missing" in sentence
    assert "the start time is missing" in sentence
    assert "the duration is not in a form I can use" in sentence


@pytest.mark.parametrize(
    ("message", "phone_call"),
    [
        ({"call": {"id": "c", "type": "inboundPhoneCall"}}, True),
        ({"call": {"id": "c", "type": "outboundPhoneCall"}}, True),
        ({"call": {"id": "c"}}, True),  # no type: a call and no chat
        ({"call": {"id": "c", "type": None}}, True),
        ({"call": {"id": "c", "type": "webCall"}}, False),
        ({"call": {"id": "c", "type": "vapi.websocketCall"}}, False),
        ({"call": {"id": "c", "type": 7}}, False),  # not text: unknown, not absent
        ({"call": {"id": "c"}, "chat": {"id": "chat_1"}}, False),
        ({"call": {"id": "c", "type": "inboundPhoneCall"}, "chat": {"id": "x"}}, False),
        ({}, False),  # no call at all
        ({"call": "inboundPhoneCall"}, False),
    ],
)
def test_only_phone_calls_count_as_phone_calls(message, phone_call):
    env = parse(_body({"type": "tool-calls", "toolCallList": [], **message}))
    assert env.is_phone_call is phone_call
