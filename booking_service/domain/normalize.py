"""Normalising what callers and language models say: phone numbers, emails, free text."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from marshmallow import ValidationError
from marshmallow.validate import Email

_email_validator = Email()
# Template text the model copied literally instead of the value, e.g. "{{customer.number}}".
_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{\{|\}\}")
# Control characters (category Cc) but tab, newline and carriage return; lone surrogates (Cs).
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# What a stored name drops: control (Cc) and format (Cf) characters that are not whitespace
# (zero-width and direction marks, soft hyphens, tags...), as of Unicode 14.0, this Python's
# unicodedata. One search in C instead of a category lookup per character (#30);
# tests/unit/test_normalize.py compares it with unicodedata on every code point and says how
# to regenerate it when a newer Python brings a newer Unicode.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f"
    "\u0890-\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
    "\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)


def looks_like_template(value: str) -> bool:
    """True for unrendered template placeholders such as "{{ customer.number }}"."""
    return bool(_TEMPLATE.search(value))


def normalize_phone(raw: object, region: str) -> str | None:
    """Return the E.164 form of `raw` parsed with `region` for local numbers, or None.

    None means "absent": empty, not text, template text, or not a valid number.
    """
    if not isinstance(raw, str):
        return None
    return _e164(raw.strip(), region)


# A request reads its caller's number more than once (the envelope's caller, the contact),
# and a call's tool calls read it again: phonenumbers' parse and validation are about a
# hundred Python calls each time. The answer depends only on the text and the region, and
# phonenumbers' metadata does not change while a process runs; the entries are bounded.
@lru_cache(maxsize=4096)
def _e164(value: str, region: str) -> str | None:
    if not value or looks_like_template(value) or len(value) > 64:
        return None
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: object) -> str | None:
    """Return the trimmed, lower-cased email if it is syntactically valid, else None."""
    if not isinstance(raw, str):
        return None
    value = raw.strip().lower()
    if not value or looks_like_template(value) or len(value) > 254:
        return None
    try:
        _email_validator(value)
    except ValidationError:
        return None
    return value


def is_valid_region(region: str) -> bool:
    """True for ISO 3166 alpha-2 regions that phonenumbers can parse local numbers for."""
    return region in phonenumbers.SUPPORTED_REGIONS


def region_of(phone: str) -> str | None:
    """The ISO 3166 region of an E.164 number ("+14155550123" → "US"), or None."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(phone, None))
    except phonenumbers.NumberParseException:
        return None


def mask_phone(phone: str | None) -> str:
    """Hide all but the last 4 digits, for logs."""
    if not phone:
        return "-"
    digits = re.sub(r"\D", "", phone)
    return "***" + digits[-4:] if len(digits) > 4 else "***"


def clean_text(value: str | None) -> str | None:
    """Collapse whitespace (line breaks included) and trim; empty becomes None."""
    if value is None:
        return None
    collapsed = " ".join(value.split())
    return collapsed or None


MAX_NAME_LENGTH = 80


def clean_name(value: str | None) -> str | None:
    """A caller's name as it may be stored and read back: control and format characters
    (zero-width and direction marks among them) removed, whitespace collapsed, at most 80
    characters. Empty becomes None."""
    if value is None:
        return None
    # Whitespace (control characters such as tab among it) separates words; split() finds it.
    collapsed = " ".join(_INVISIBLE.sub("", value).split())[:MAX_NAME_LENGTH].rstrip()
    return collapsed or None


def unstorable_character(value: str) -> str | None:
    """Describe the first character PostgreSQL text cannot hold or a caller cannot mean.

    NUL bytes and lone surrogates (from "\\ud800" in JSON) are refused; other control
    characters are refused too, since no spoken answer contains them.
    """
    # One search in C rather than a category lookup per character: every argument a caller
    # gives passes here (#30). The classes are Unicode's Cc and Cs, which are fixed: the
    # standard's stability policy assigns no new control characters or surrogates.
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    return "an invalid character" if found.group() >= "\ud800" else "a control character"


def without_unstorable(value: str) -> str:
    """`value` with every character `unstorable_character` refuses taken out."""
    return _UNSTORABLE.sub("", value)
