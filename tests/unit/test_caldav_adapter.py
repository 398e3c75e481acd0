"""The CalDAV adapter speaks to the address it checked (#24)."""

from __future__ import annotations

import socket

import httpx
import pytest

from booking_service.adapters import caldav


def test_a_rebinding_dns_answer_cannot_send_a_calendar_request_to_loopback(monkeypatch):
    """The finding: the caldav package resolved the name again for each request, so a name
    that first answered a public address and then 127.0.0.1 reached an internal server. The
    adapter resolves once and connects to that address, keeping the name in Host."""
    lookups = []

    def rebinding(host, port, *args, **kwargs):
        lookups.append(host)
        address = "93.184.215.14" if len(lookups) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    sent = []

    def no_network(self, request):
        # Nothing leaves this machine: record where the request would have gone.
        sent.append(request)
        raise httpx.ConnectError("not in tests", request=request)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", no_network)
    calendar = caldav.CalDavCalendar(
        "https://calendar.example.org/owner/cal/", "owner", "pw", timeout_s=1, allow_private=False
    )
    with calendar:
        for exchange in (calendar.check, lambda: calendar.put("uid-1", b"BEGIN:VCALENDAR")):
            with pytest.raises(caldav.CalendarUnreachable):
                exchange()
    assert lookups == ["calendar.example.org"]  # once for the session, not per request
    assert [r.url.host for r in sent] == ["93.184.215.14", "93.184.215.14"]
    assert all(r.headers["host"] == "calendar.example.org" for r in sent)
    assert all(r.extensions.get("sni_hostname") == "calendar.example.org" for r in sent)
    # The next session sees the rebound answer, and refuses it before any request.
    with pytest.raises(caldav.CalendarUnreachable, match="private or internal"):
        calendar.__enter__()
    assert len(sent) == 2
