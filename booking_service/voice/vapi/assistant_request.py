"""VAPI's `assistant-request` (a number without a fixed assistant, answered within 7.5 s):
the organization's assistant with `assistantOverrides.variableValues` (use_cases/
caller_greeting.py), so the prompt can say "Today is {{weekday}}, {{todaySpoken}}" in the
business's own zone and greet a verified caller by {{callerFirstName}}."""

from __future__ import annotations

from booking_service.use_cases.caller_greeting import Greeting


def answer_body(greeting: Greeting) -> dict:
    """The answer VAPI expects; {} when the organization set no assistant (VAPI then uses the
    number's own configuration, as before)."""
    if greeting.assistant_id is None:
        return {}
    return {
        "assistantId": greeting.assistant_id,
        "assistantOverrides": {"variableValues": greeting.variables},
    }
