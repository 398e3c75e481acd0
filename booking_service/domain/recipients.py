"""Who the business may send a message to, and the day a sending budget counts in. Pure rules.

A caller (or anyone claiming to be one) chooses the number and address a booking's messages go
to, and the business pays for and answers for every one (#24):
- SMS only to numbers that can receive one: mobile, or "fixed line or mobile" (how the North
  American plan reports most numbers), in the organization's allowed countries. Never premium
  rate, toll free, shared cost, pagers, VoIP, personal or unknown numbers: a text to a +1 900
  number costs the business, and a text to a landline is lost.
- Email only to an address on a domain name with a dot: no IP literal (`root@[10.0.0.5]`), no
  bare number, no single label and nothing under localhost or the other names reserved for
  local networks (`postmaster@localhost`, `x@printer.local`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import PhoneNumberType

TEXTABLE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
# Special-use names (RFC 6761, RFC 6762, RFC 8375 and ICANN's .internal): never a mailbox of a
# caller's.
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".invalid", ".lan")


def sms_countries(configured: list[str] | None, home_region: str) -> list[str]:
    """The countries an organization texts: those it configured, else its own region."""
    return list(configured) if configured else [home_region]


def may_text(phone: str | None, countries: Iterable[str]) -> bool:
    """Whether an E.164 number may be sent an SMS: a valid mobile (or fixed-line-or-mobile)
    number of one of `countries`."""
    if not phone:
        return False
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return False
    if not phonenumbers.is_valid_number(number):
        return False
    if phonenumbers.region_code_for_number(number) not in set(countries):
        return False
    return phonenumbers.number_type(number) in TEXTABLE_TYPES


def may_email(address: str | None) -> bool:
    """Whether an address (already syntactically valid) is on a public-looking domain name."""
    if not address or "@" not in address:
        return False
    domain = address.rpartition("@")[2].strip().lower().rstrip(".")
    if not domain or domain.startswith("[") or "." not in domain:
        return False
    try:
        ipaddress.ip_address(domain)
    except ValueError:
        pass
    else:
        return False  # a bare address (10.0.0.5) is no domain name either
    if domain == "localhost" or domain.endswith(_LOCAL_SUFFIXES):
        return False
    # A top-level label of digits only is no name a registry hands out.
    return not domain.rsplit(".", 1)[1].isdigit()


def day_start(now: datetime, zone: ZoneInfo) -> datetime:
    """The start of the organization's local day holding `now`, as a UTC instant: the window
    a daily budget counts in."""
    local = now.astimezone(zone)
    return datetime.combine(local.date(), time.min).replace(tzinfo=zone).astimezone(UTC)
