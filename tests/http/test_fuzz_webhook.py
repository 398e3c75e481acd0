"""Fuzzing the webhook with generated envelopes and arguments (hypothesis).

Wrong types, missing fields, huge strings, deep nesting, unicode, NUL bytes, invalid UTF-8 and
odd time formats: the answer is never a 5xx, never carries SQL, driver names or a traceback,
and the database holds only valid rows afterwards. The app runs with TESTING on, so any
unexpected exception fails the test instead of hiding behind a friendly sentence.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.helpers import local_start

LEAKS = ("constraint", "psycopg", "SELECT", "Traceback", "sqlalchemy", "INSERT", "UPDATE ")

TOOLS = st.sampled_from(
    [
        "bookAppointment",
        "checkAvailability",
        "findAppointments",
        "cancelAppointment",
        "rescheduleAppointment",
        "orderPizza",
        "",
        "book Appointment",
    ]
)


def _not_a_leak_word(value: object) -> bool:
    """Caller text is echoed back on purpose (a name, an unknown service, a call id), so it
    must not itself hold a word the leak check looks for: Hypothesis mines string constants
    from the code base and once drew "constraint" as a call id."""
    return not (isinstance(value, str) and any(word in value for word in LEAKS))


odd_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=300),
    st.just("\x00"),
    st.just("x" * 5000),
    st.just("{{customer.number}}"),
    st.just("\ud800"),
).filter(_not_a_leak_word)
times = st.one_of(
    st.just(local_start(days=5)),
    st.sampled_from(
        [
            "2026-02-30T10:00",
            "tomorrow",
            "10am",
            "2027-03-14T02:30",
            "2027-11-07T01:30",
            "9999-12-31T23:59",
            "0001-01-01",
            "2030-01-07T10:00:00+14:00",
            "2030-01-07T10:00Z",
            "2030-W02-1T10:00",
            "",
            "T",
            "2030-01-07 10:00",
        ]
    ),
    odd_text,
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), odd_text)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)

arguments = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(odd_text, json_values),
        "phone": st.one_of(
            st.sampled_from(["+14155550123", "(415) 555-0123", "12", "call me"]),
            odd_text,
            st.integers(),
        ),
        "email": st.one_of(
            st.sampled_from(["a@example.com", "A@EXAMPLE.COM", "bad@", ""]), odd_text
        ),
        "start": times,
        "newStart": times,
        "date": st.one_of(st.sampled_from(["2030-01-07", "2026-13-01", ""]), odd_text),
        "from": times,
        "to": times,
        "durationMinutes": st.one_of(st.integers(-10, 10_000), st.floats(allow_nan=True), odd_text),
        "service": odd_text,
        "resource": odd_text,
        "reference": odd_text,
        "reason": odd_text,
        "notes": odd_text,
    },
)


@st.composite
def tool_calls(draw):
    shape = draw(st.integers(0, 3))
    args = draw(st.one_of(arguments, json_values))
    raw_args = json.dumps(args) if draw(st.booleans()) else args
    # The id is echoed back by design (VAPI matches answers to calls by it).
    call_id = draw(
        st.one_of(st.text(min_size=1, max_size=30), st.integers(), st.none(), odd_text).filter(
            _not_a_leak_word
        )
    )
    if shape == 0:
        return {
            "id": call_id,
            "type": "function",
            "function": {"name": draw(TOOLS), "arguments": raw_args},
        }
    if shape == 1:
        return {"id": call_id, "name": draw(TOOLS), "parameters": raw_args}
    if shape == 2:
        return {"id": call_id, "function": draw(json_values)}
    return draw(json_values)


@st.composite
def bodies(draw):
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=200))  # not JSON, maybe not UTF-8
    if kind == 1:
        depth = draw(st.integers(1, 3000))
        return b'{"message": ' + b"[" * depth + b"]" * depth + b"}"
    message = {
        "type": draw(st.sampled_from(["tool-calls", "tool-calls", "status-update", None, 7])),
        "call": draw(
            st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {"id": st.one_of(odd_text, st.integers())},
                    optional={
                        "customer": st.fixed_dictionaries(
                            {"number": st.one_of(odd_text, st.just("+14155550123"))}
                        )
                    },
                ),
            )
        ),
    }
    calls = draw(st.lists(tool_calls(), max_size=3))
    message[draw(st.sampled_from(["toolCallList", "toolCalls", "toolCallList"]))] = calls
    if draw(st.booleans()):
        message["customer"] = {"number": draw(st.one_of(odd_text, st.just("+14155550123")))}
    return json.dumps({"message": message}).encode("utf-8", "surrogatepass")


@settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies())
def test_fuzzed_webhook_bodies_never_fail_or_leak_and_leave_only_valid_rows(client, org, db, body):
    response = client.post(
        "/api/vapi/tools", data=body, headers={"Content-Type": "application/json", **org.headers}
    )

    assert response.status_code in (200, 400, 413), response.status_code
    text = response.get_data(as_text=True)
    for word in LEAKS:
        assert word not in text
    if response.status_code == 200 and response.get_json():
        for result in response.get_json()["results"]:
            spoken = result.get("result", result.get("error"))
            assert isinstance(spoken, str) and "\n" not in spoken
    assert db.execute(INVALID_ROWS).fetchone()[0] == 0


# Rows the service must never write, whatever it was sent.
INVALID_ROWS = """
SELECT
  (SELECT count(*) FROM contacts WHERE phone IS NOT NULL AND phone !~ '^[+][1-9][0-9]{6,14}$')
+ (SELECT count(*) FROM contacts WHERE email IS NOT NULL AND email <> lower(btrim(email)))
+ (SELECT count(*) FROM contacts WHERE name ~ '[[:cntrl:]]')
+ (SELECT count(*) FROM appointments WHERE ends_at <= starts_at)
+ (SELECT count(*) FROM tool_calls WHERE answer IS NULL)
"""
