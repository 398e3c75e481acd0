"""Normalising phones, emails and text: pure functions, no database."""

from __future__ import annotations

import logging

import pytest

from booking_service.logging_setup import ContextFilter
from booking_service.normalize import (
    clean_text,
    mask_phone,
    normalize_email,
    normalize_phone,
    unstorable_character,
)
from booking_service.services.contacts import identify_caller


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
        caller_number="+14155550123",
    )
    assert who.phone == "+12025550199"


def test_unreadable_phone_argument_falls_back_to_the_callers_number_and_is_remembered():
    who = identify_caller(
        region="US",
        name="A",
        phone_argument="the usual",
        email_argument="nope",
        caller_number="+14155550123",
    )
    assert who.phone == "+14155550123"
    assert who.unreadable_phone == "the usual"
    assert who.email is None and who.unreadable_email == "nope"


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
