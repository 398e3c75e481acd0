"""The pure parts of the OAuth calendars: Google event ids in Google's alphabet, and provider
answers turned into the port's failures (a revoked grant is NeedsReconnect, never "free";
throttling carries its Retry-After)."""

from __future__ import annotations

import re

import httpx
import pytest

from booking_service.adapters.google_calendar import event_id
from booking_service.adapters.oauth import (
    OAuthClient,
    _token_failure,
    authorize_url,
    new_state,
    new_verifier,
    retry_after,
)
from booking_service.domain.caller_messages import calendar_uid
from booking_service.ports.calendars import CalendarFailure, NeedsReconnect, Throttled

CLIENT = OAuthClient(
    name="Microsoft",
    client_id="id",
    client_secret="secret",
    auth_url="https://login.example/authorize",
    token_url="https://login.example/token",
    scopes=("offline_access", "Calendars.ReadWrite"),
)


def test_google_event_ids_use_only_a_to_v_and_digits_and_differ_per_appointment():
    ids = {event_id(calendar_uid(org, ref)) for org in (1, 2, 10**12) for ref in ("ABC123", "Q")}
    assert len(ids) == 6
    assert all(re.fullmatch(r"[a-v0-9]{5,1024}", i) for i in ids)
    # The same appointment always gets the same id (what makes a retry a 409, not a copy).
    assert event_id(calendar_uid(7, "K7M2QX")) == event_id(calendar_uid(7, "K7M2QX"))


@pytest.mark.parametrize(
    ("status", "body", "kind", "words"),
    [
        (
            400,
            {"error": "invalid_grant", "error_description": "Token has been revoked."},
            NeedsReconnect,
            "invalid_grant",
        ),
        (
            400,
            {"error": "invalid_grant", "error_description": "AADSTS70008: expired"},
            NeedsReconnect,
            "AADSTS70008",
        ),
        (401, {"error": "invalid_client"}, CalendarFailure, "client id or secret"),
        (503, {}, Throttled, "503"),
    ],
)
def test_token_endpoint_answers_become_the_ports_failures(status, body, kind, words):
    failure = _token_failure(CLIENT, httpx.Response(status, json=body))
    assert type(failure) is kind
    assert words in str(failure)
    assert "revoked." not in str(failure)  # the provider's own text is not repeated


def test_retry_after_reads_seconds_and_dates():
    assert retry_after("120") == 120
    assert retry_after(None) is None and retry_after("soon") is None
    assert 0 <= retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 1  # past: at once


def test_the_consent_url_carries_pkce_and_a_fresh_state():
    url = authorize_url(
        CLIENT, "https://book.example.com/oauth/microsoft/callback", new_state(), new_verifier()
    )
    assert "code_challenge_method=S256" in url and "code_challenge=" in url
    assert "scope=offline_access+Calendars.ReadWrite" in url
    assert new_state() != new_state() and len(new_verifier()) >= 43
