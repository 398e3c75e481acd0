"""Normalising phones, emails and text: pure functions, no database."""

from __future__ import annotations

import logging
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from booking_service.domain import normalize
from booking_service.domain.normalize import (
    clean_name,
    clean_text,
    mask_phone,
    normalize_email,
    normalize_phone,
    unstorable_character,
    without_unstorable,
)
from booking_service.runtime.logging_setup import ContextFilter, log_context, mask_digits
from booking_service.voice.arguments import ToolError, identify_caller


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(415) 555-0123", "US", "+14155550123"),
        ("415.555.0123", "US", "+14155550123"),
        ("+14155550123", "US", "+14155550123"),
        ("8883658681", "US", "+18883658681"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+1 415 555 0123", "GB", "+14155550123"),
        ("{{customer.number}}", "US", None),
        ("{{ customer.number }}", "US", None),
        ("555-0123", "US", None),
        ("12", "US", None),
        ("", "US", None),
        ("not a number", "US", None),
        (None, "US", None),
        (4155550123, "US", None),
    ],
)
def test_phone_numbers_become_e164_or_absent(raw, region, expected):
    assert normalize_phone(raw, region) == expected
    # Asked again (kept per process now): the same answer, and a text's answer in one region
    # is not another region's.
    assert normalize_phone(raw, region) == expected


def test_a_kept_phone_answer_belongs_to_its_text_and_region():
    assert normalize_phone("020 7946 0958", "GB") == "+442079460958"
    assert normalize_phone("020 7946 0958", "US") is None
    assert normalize_phone(" 020 7946 0958 ", "GB") == "+442079460958"
    assert normalize_phone(["+14155550123"], "US") is None  # not text: never looked up


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" Sam.Okafor@Example.com ", "sam.okafor@example.com"),
        ("maria@example.com", "maria@example.com"),
        ("not-an-email", None),
        ("a@b", None),
        ("{{customer.email}}", None),
        ("", None),
        (None, None),
    ],
)
def test_emails_are_trimmed_lowercased_and_validated(raw, expected):
    assert normalize_email(raw) == expected


def test_phone_argument_wins_over_the_callers_number():
    who = identify_caller(
        region="US",
        name="A",
        phone_argument="202-555-0199",
        email_argument=None,
        verified_number="+14155550123",
    )
    assert who.phone == "+12025550199"


@pytest.mark.parametrize("template", ["{{customer.number}}", "{{ customer.number }}", "  "])
def test_template_text_or_blank_phone_counts_as_absent(template):
    who = identify_caller(
        region="US",
        name="A",
        phone_argument=template,
        email_argument=None,
        verified_number="+14155550123",
    )
    assert who.phone == "+14155550123"


@pytest.mark.parametrize(
    ("phone", "email", "words"),
    [("the usual", None, "repeat"), ("+1", None, "repeat"), (None, "nope", "spell")],
)
def test_unreadable_phone_or_email_is_asked_again_never_replaced(phone, email, words):
    with pytest.raises(ToolError) as refused:
        identify_caller(
            region="US",
            name="A",
            phone_argument=phone,
            email_argument=email,
            verified_number="+14155550123",
        )
    assert words in refused.value.message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Maria\u200bLopez", "MariaLopez"),  # zero-width space (format)
        ("Maria\u202eLopez", "MariaLopez"),  # right-to-left override (format)
        ("Maria\x07 Lopez", "Maria Lopez"),  # bell (control)
        ("  Maria\n\tLopez ", "Maria Lopez"),
        ("A" * 200, "A" * 80),
        ("\u200b\u200c", None),
        (None, None),
    ],
)
def test_names_lose_control_and_format_characters_and_are_cut_to_80(raw, expected):
    assert clean_name(raw) == expected


def _clean_name_by_category(value: str) -> str | None:
    """clean_name as it was written before its one search (#30): the reference."""
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in value
        if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf")
    )
    return " ".join(kept.split())[:80].rstrip() or None


def test_names_drop_exactly_the_non_space_control_and_format_characters():
    """The search's class against unicodedata on every code point, between two letters. A
    newer Python's Unicode may add format characters; then regenerate `_INVISIBLE` from
    unicodedata (the ranges of code points that are not whitespace and are Cc or Cf)."""
    for code_point in range(0x110000):
        ch = chr(code_point)
        dropped = not ch.isspace() and unicodedata.category(ch) in ("Cc", "Cf")
        assert (normalize._INVISIBLE.fullmatch(ch) is not None) == dropped, hex(code_point)
        if dropped:
            assert clean_name(f"A{ch}b") == "Ab", hex(code_point)


@given(
    st.text(
        st.one_of(
            st.characters(),
            st.sampled_from("\t\n\x0b\x1c\x85\xa0\u2028\u200b\u202e\xad\x00\x7f \u180e"),
        ),
        max_size=120,
    )
)
def test_clean_name_agrees_with_the_character_by_character_rule(value):
    assert clean_name(value) == _clean_name_by_category(value)


def test_masking_keeps_only_the_last_four_digits():
    assert mask_phone("+14155550123") == "***0123"
    assert mask_phone(None) == "-"


def test_log_filter_masks_phone_numbers_in_any_message():
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "caller %s booked", ("+14155550123",), None
    )
    ContextFilter().filter(record)

    assert record.getMessage() == "caller ***0123 booked"
    assert record.request_id == "-"


@pytest.mark.parametrize(
    "written",
    [
        "+14155550111",
        "+1 (415) 555-0111",
        "+1/415/555/0111",
        "+1_415_555_0111",
        "+1.415.555.0111",
        "415 555 0111",
        "\uff0b\uff11\uff14\uff11\uff15\uff15\uff15\uff15\uff10\uff11\uff11\uff11",
        "+1\u2010415\u2010555\u20100111",
        "4155-55-0111",
        "1.415.555.0111",
        "1 415 555 0111",
    ],
)
def test_log_masking_catches_a_number_however_it_is_written(written):
    masked = mask_digits(f"caller said {written} twice")

    assert masked == "caller said ***0111 twice"


@pytest.mark.parametrize(
    "kept",
    [
        "2026-11-30",
        "2026-11-30T10:00",
        "2026-11-30T10:00:00+02:00",
        "2026-11-30 10:00:00,123",
        "0001-01-01T00:00+14:00",
        "15:23:03",
        "127.0.0.1:8000",
        "192.168.100.200",
        "took 12.5 ms",
        "30/11/2026",
        "2026/11/30",
        "resource 12 2026-12-01 09:00",
    ],
)
def test_log_masking_leaves_dates_times_and_addresses_alone(kept):
    assert mask_digits(f"at {kept} ok") == f"at {kept} ok"


def test_a_french_number_is_not_taken_for_an_address():
    assert mask_digits("call 06.12.34.56.78") == "call ***5678"


def test_log_filter_masks_extra_fields_but_not_the_ids():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "booked", (), None)
    record.phone = "+1/415/555/0111"
    record.caller = {"number": "+14155550111"}
    record.duration_ms = 12.5
    with log_context(request_id="e2e-2142424c85cd"):
        ContextFilter().filter(record)

    assert record.phone == "***0111"
    assert record.caller == "{'number': '***0111'}"
    assert record.duration_ms == 12.5
    assert record.request_id == "e2e-2142424c85cd"  # how the line is found


def test_clean_text_collapses_whitespace_and_line_breaks():
    assert clean_text("  Maria \n Lopez\t") == "Maria Lopez"
    assert clean_text("   ") is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("ok text\twith tab", None),
        ("nul\x00byte", "a control character"),
        ("bell\x07", "a control character"),
        ("lone \ud800 surrogate", "an invalid character"),
        ("emoji 🦷 fine", None),
    ],
)
def test_unstorable_characters_are_named(value, problem):
    assert unstorable_character(value) == problem


def test_unstorable_character_agrees_with_unicode_categories_on_every_code_point():
    """The search's character class is Unicode's Cc (less tab, newline, carriage return) and
    Cs; checked against unicodedata for every code point, alone and after allowed text."""

    def by_category(ch: str) -> str | None:
        category = unicodedata.category(ch)
        if ch in "\t\n\r" or category not in ("Cc", "Cs"):
            return None
        return "an invalid character" if category == "Cs" else "a control character"

    for code_point in range(0x110000):
        ch = chr(code_point)
        expected = by_category(ch)
        assert unstorable_character(ch) == expected, hex(code_point)
        if expected is not None:
            assert unstorable_character(f"Ana\t{ch}\ud800") == expected, hex(code_point)


def test_without_unstorable_takes_out_exactly_what_unstorable_character_refuses():
    text = "".join(chr(code_point) for code_point in range(0x110000))
    kept = without_unstorable(text)

    assert kept == "".join(ch for ch in text if unstorable_character(ch) is None)
    assert "\t\n\r" in kept and unstorable_character(kept) is None
