"""The invocation key of a platform that sends no per-invocation id."""

from __future__ import annotations

from booking_service.voice.invocation import invocation_key, usable_id


def test_the_same_invocation_sent_again_has_the_same_key_whatever_the_key_order():
    first = invocation_key("retell", "call-1", "bookAppointment", {"name": "Ann", "start": "9"})
    again = invocation_key("retell", "call-1", "bookAppointment", {"start": "9", "name": "Ann"})

    assert first == again
    assert usable_id(first) == first


def test_another_platform_call_tool_or_argument_is_another_invocation():
    key = invocation_key("retell", "call-1", "bookAppointment", {"start": "9"})

    assert key != invocation_key("elevenlabs", "call-1", "bookAppointment", {"start": "9"})
    assert key != invocation_key("retell", "call-2", "bookAppointment", {"start": "9"})
    assert key != invocation_key("retell", "call-1", "cancelAppointment", {"start": "9"})
    assert key != invocation_key("retell", "call-1", "bookAppointment", {"start": "10"})
