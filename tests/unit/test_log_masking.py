"""The log masker: phone numbers are masked however they are written, while the digit runs
inside ids (Twilio SIDs, hex event and request ids, UUIDs) stay as they are: they are how a
log line is found."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from booking_service.runtime.logging_setup import _PHONE, _PHONE_LIKE, mask_digits


@pytest.mark.parametrize(
    "kept",
    [
        "SM0123456789abcdef0123456789abcdef",  # a Twilio message SID
        "AC11111111111111111111111111111111",  # an account SID: all digits after the prefix
        "MM4155550123abcdef4155550123abcdef",
        "msg_0123456789abcdef0123456789abcdef",  # our event ids
        "msg_4155550123abcdef",
        "0123456789abcdef",  # hex starting with the digits
        "abcdef0123456789",  # hex ending with them
        "e2e-2142424c85cd",  # a request id
        "550e8400-e29b-41d4-a716-446655440000",  # a UUID whose last group is all digits
        "12345678-1234-4123-8123-123456789012",  # a UUID of digits only
        "12345678-1234-4123-8123-123456789012".upper(),
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "v1,4155550123abcdef4155550123==",  # a base64 signature
    ],
)
def test_digit_runs_inside_ids_are_left_alone(kept):
    for line in (f"id {kept} ok", kept, f'{{"id": "{kept}"}}', f"id={kept}", f"sid:{kept}"):
        assert mask_digits(line) == line


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("to +1 415 555 0123 ok", "to ***0123 ok"),
        ("to (415) 555-0123 ok", "to (***0123 ok"),
        ("to 4155550123", "to ***0123"),
        ("4155550123", "***0123"),
        ("+14155550123", "***0123"),
        ('{"phone": "+14155550123"}', '{"phone": "***0123"}'),
        (
            '{"to":"4155550123","sid":"SM0123456789abcdef"}',
            '{"to":"***0123","sid":"SM0123456789abcdef"}',
        ),
        ("phone=+14155550123&x=1", "phone=***0123&x=1"),
        ("phone=4155550123", "phone=***0123"),
        ("phone:415.555.0123", "phone:***0123"),
        ("phone=%2B14155550123&x=1", "phone=***0123&x=1"),  # percent-encoded plus
        ("phone=%2b14155550123", "phone=***0123"),
        ("tel:+14155550123", "tel:***0123"),
        ("whatsapp:+14155550123", "whatsapp:***0123"),
        ("sent to+14155550123", "sent to+***0123"),  # a glued plus: the digits still go
        ("电话4155550123", "电话***0123"),  # other scripts' letters do not make an id
        (
            "电话\uff1a\uff11\uff14\uff11\uff15\uff15\uff15\uff15\uff10\uff11\uff12\uff13",
            "电话\uff1a***0123",
        ),
        ("+1 415 555 0123 and SM0123456789abcdef", "***0123 and SM0123456789abcdef"),
        ("4155550123 0123456789abcdef", "***0123 0123456789abcdef"),
        (
            "2026-12-01 09:00 +14155550123 550e8400-e29b-41d4-a716-446655440000",
            "2026-12-01 09:00 ***0123 550e8400-e29b-41d4-a716-446655440000",
        ),
        ("at 09:00+14155550123", "at 09:00+***0123"),
    ],
)
def test_phone_numbers_are_masked_however_written_and_wherever(line, expected):
    assert mask_digits(line) == expected


_hex = st.text(alphabet="0123456789abcdefABCDEF", min_size=8, max_size=40)


@given(token=_hex.filter(lambda t: re.search("[a-fA-F]", t) is not None))
def test_hex_ids_with_a_letter_are_never_masked(token):
    for line in (f"id {token} ok", f"SM{token}", f'{{"id":"{token}"}}', f"id={token}"):
        assert mask_digits(line) == line


@given(value=st.uuids())
def test_uuids_are_never_masked(value):
    for shown in (str(value), str(value).upper()):
        line = f"request {shown} done"
        assert mask_digits(line) == line


_SEPARATORS = st.sampled_from([" ", "-", ".", "/", "_", "", "\u2011", "\u2013"])


@given(
    digits=st.text(alphabet="0123456789", min_size=10, max_size=10),
    separator=_SEPARATORS,
    prefix=st.sampled_from(["", "+1 ", "+1", "1 ", "%2B1"]),
    before=st.sampled_from(["", " ", "=", ":", '"', "'", "(", "to ", "phone="]),
    after=st.sampled_from(["", " ", '"', ",", "&", ")", ".", " SM0123456789abcdef"]),
)
def test_a_number_is_always_masked_to_its_last_four(digits, separator, prefix, before, after):
    written = separator.join((digits[:3], digits[3:6], digits[6:]))
    line = f"{before}{prefix}{written}{after}"
    masked = mask_digits(line)

    assert digits[:6] not in re.sub(r"\D", "", masked.replace("SM0123456789abcdef", ""))
    assert f"***{digits[-4:]}" in masked
    assert json.loads(json.dumps(masked)) == masked


@given(st.text(alphabet="0123456789abcdefSMT+-%2B ()._/:=\u5728\uff11", max_size=60))
def test_the_quick_check_never_skips_a_line_that_has_a_number(line):
    # The early exit is only correct if every number `_PHONE` would mask is also found by
    # the lookaround-free `_PHONE_LIKE` search that settles most lines.
    if _PHONE.search(line) is not None:
        assert _PHONE_LIKE.search(line) is not None
    # And the second quick check: what `_PHONE` does not find in the whole line, it finds in
    # no part of it between dates and times either.
    if _PHONE.search(line) is None:
        assert mask_digits(line) == line


def test_ids_made_by_uuid4_survive_in_a_line_with_a_number():
    event = f"msg_{uuid.uuid4().hex}"
    line = f"SMS to +14155550123 event={event}"
    assert mask_digits(line) == f"SMS to ***0123 event={event}"
