"""Reading VAPI envelopes tolerantly, and speaking argument errors."""

from __future__ import annotations

import json

import pytest
from marshmallow import ValidationError

from booking_service.voice.schemas import BookAppointmentArgs, spoken_errors
from booking_service.voice.vapi.envelope import BadEnvelope, parse


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


# orjson reads the body; the standard library takes what orjson refuses or would read
# differently, so that the service accepts and reads exactly what it did before orjson.
_TOOL_CALL = (
    '{"message": {"type": "tool-calls", "toolCallList": [{"id": %s, "function": '
    '{"name": "bookAppointment", "arguments": %s}}]}}'
)


@pytest.mark.parametrize(
    ("call_id", "arguments", "expected_id", "expected_arguments"),
    [
        # a lone surrogate: the tool's own check refuses it later, with a spoken error
        ('"a"', '{"name": "\\ud800x"}', "a", {"name": "\ud800x"}),
        # NaN and an overflowing number: LenientInteger refuses them later
        ('"a"', '{"durationMinutes": NaN}', "a", {"durationMinutes": float("nan")}),
        ('"a"', '{"durationMinutes": 1e400}', "a", {"durationMinutes": float("inf")}),
        # an integer past 64 bits keeps every digit (orjson would make it a float)
        ("123456789012345678901", "{}", "123456789012345678901", {}),
        (
            '"a"',
            '{"durationMinutes": 12345678901234567890123}',
            "a",
            {"durationMinutes": 12345678901234567890123},
        ),
        # the last of duplicate keys wins, in both parsers
        ('"a"', '{"name": "first", "name": "second"}', "a", {"name": "second"}),
    ],
)
def test_the_body_is_read_as_the_standard_library_reads_it(
    call_id, arguments, expected_id, expected_arguments
):
    body = (_TOOL_CALL % (call_id, arguments)).encode()
    call = parse(body).calls[0]
    assert call.id == expected_id
    # NaN is not equal to itself: compare the JSON text, which spells it out.
    assert json.dumps(call.arguments) == json.dumps(expected_arguments)


def test_a_byte_order_mark_and_deep_nesting_are_read_or_refused_as_before():
    plain = _TOOL_CALL % ('"a"', "{}")
    assert parse(b"\xef\xbb\xbf" + plain.encode()).calls[0].id == "a"
    deep = '{"message": {"type": "status-update", "x": ' + "[" * 5000 + "]" * 5000 + "}}"
    with pytest.raises(BadEnvelope):
        parse(deep.encode())
