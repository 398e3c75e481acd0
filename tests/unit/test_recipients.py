"""Who may be sent a text or an email (recipients.py, #24)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from booking_service.domain.recipients import day_start, may_email, may_text


@pytest.mark.parametrize(
    ("phone", "countries", "allowed"),
    [
        ("+14155550123", ["US"], True),  # fixed line or mobile: how NANP numbers read
        ("+447400123456", ["GB"], True),  # a UK mobile
        ("+33612345678", ["FR"], True),
        ("+19005550123", ["US"], False),  # premium rate
        ("+18005550123", ["US"], False),  # toll free
        ("+18885550123", ["US"], False),
        ("+442079460000", ["GB"], False),  # a London landline
        ("+448431234567", ["GB"], False),  # shared cost
        ("+447400123456", ["US"], False),  # outside the allowed countries
        ("+1415", ["US"], False),  # not a number
        ("", ["US"], False),
        (None, ["US"], False),
    ],
)
def test_only_numbers_that_can_take_a_text_are_texted(phone, countries, allowed):
    assert may_text(phone, countries) is allowed


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("maria@example.com", True),
        ("a.b@mail.clinic.co.uk", True),
        ("root@[10.0.0.5]", False),
        ("root@[IPv6:::1]", False),
        ("a@10.0.0.5", False),
        ("postmaster@localhost", False),
        ("x@printer.local", False),
        ("x@host.localhost", False),
        ("x@db.internal", False),
        ("x@router.home.arpa", False),
        ("x@intranet", False),  # a single label
        ("x@example.123", False),
        ("", False),
        (None, False),
    ],
)
def test_only_public_domain_names_are_mailed(address, allowed):
    assert may_email(address) is allowed


def test_a_budget_day_is_the_organizations_local_day_across_dst():
    paris = ZoneInfo("Europe/Paris")
    # 23:30 UTC on 28 March 2027 is 01:30 on the 29th in Paris (summer time since 02:00 on 28th).
    assert day_start(datetime(2027, 3, 28, 23, 30, tzinfo=UTC), paris) == datetime(
        2027, 3, 28, 22, tzinfo=UTC
    )
    assert day_start(datetime(2027, 3, 28, 12, tzinfo=UTC), paris) == datetime(
        2027, 3, 27, 23, tzinfo=UTC
    )
