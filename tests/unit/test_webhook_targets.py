"""Which webhook targets are refused, and where an allowed one is really sent (no network:
IP literals and localhost resolve without DNS)."""

from __future__ import annotations

import pytest

from booking_service.adapters.webhooks import UnsafeTarget, check_target


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hooks",
        "http://10.1.2.3/hooks",
        "http://169.254.169.254/latest/meta-data",  # cloud metadata
        "http://[::1]/hooks",
        "http://[::ffff:127.0.0.1]/hooks",  # IPv4-mapped
        "http://[64:ff9b::a9fe:a9fe]/hooks",  # NAT64 of 169.254.169.254
        "http://[2002:7f00:1::]/hooks",  # 6to4 of 127.0.0.1
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
        "http://0.0.0.0/hooks",
        "http://localhost:8080/hooks",
    ],
)
def test_internal_addresses_are_refused(url):
    with pytest.raises(UnsafeTarget):
        check_target(url, allow_private=False)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "http:///x", "http://h:99999/x"])
def test_what_is_not_an_http_url_with_a_host_and_port_is_refused(url):
    with pytest.raises(UnsafeTarget):
        check_target(url, allow_private=True)


def test_a_public_address_is_allowed_and_sent_to_as_checked():
    target = check_target("https://93.184.216.34:8443/hooks?x=1", allow_private=False)
    assert target.url == "https://93.184.216.34:8443/hooks?x=1"
    assert target.sni_hostname == "93.184.216.34"


def test_a_host_name_is_pinned_to_the_address_that_was_checked():
    target = check_target("http://localhost:8080/hooks", allow_private=True)
    assert target.url in ("http://127.0.0.1:8080/hooks", "http://[::1]:8080/hooks")
    assert target.host_header == "localhost:8080"
    assert target.sni_hostname is None
