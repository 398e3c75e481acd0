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
        "http://[::127.0.0.1]/hooks",  # IPv4-compatible (deprecated ::/96)
        "http://[::10.0.0.5]/hooks",
        "http://[::8.8.8.8]/hooks",  # the whole ::/96, whatever it carries
        "http://[::a00:5]/hooks",  # the same as ::10.0.0.5, written in hex
        "http://[64:ff9b:1::a00:5]/hooks",  # NAT64 local-use (RFC 8215) of 10.0.0.5
        "http://[64:ff9b:1:ffff::5db8:d822]/hooks",  # local-use, even of a public address
        "http://[::ffff:0:a00:5]/hooks",  # SIIT (RFC 2765) of 10.0.0.5
        "http://[::ffff:0:7f00:1]/hooks",  # SIIT of 127.0.0.1
        "http://[64:ff9b::7f00:1]/hooks",  # NAT64 well-known prefix of 127.0.0.1
        "http://[2002:a00:5::1]/hooks",  # 6to4 of 10.0.0.5
        "http://[2001:0:a00:5::1]/hooks",  # Teredo, whatever it carries
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


@pytest.mark.parametrize(
    "url",
    [
        "http://[::ffff:93.184.216.34]/hooks",  # IPv4-mapped public address
        "http://[64:ff9b::5db8:d822]/hooks",  # DNS64 of 93.184.216.34: IPv6-only hosts need it
        "http://[::ffff:0:5db8:d822]/hooks",  # SIIT of a public address
        "http://[2002:5db8:d822::1]/hooks",  # 6to4 of a public address
        "http://[2606:2800:220:1:248:1893:25c8:1946]/hooks",  # plain global IPv6
    ],
)
def test_public_addresses_in_embedded_forms_are_allowed(url):
    assert check_target(url, allow_private=False).url.endswith("/hooks")


def test_a_public_address_is_allowed_and_sent_to_as_checked():
    target = check_target("https://93.184.216.34:8443/hooks?x=1", allow_private=False)
    assert target.url == "https://93.184.216.34:8443/hooks?x=1"
    assert target.sni_hostname == "93.184.216.34"


def test_a_host_name_is_pinned_to_the_address_that_was_checked():
    target = check_target("http://localhost:8080/hooks", allow_private=True)
    assert target.url in ("http://127.0.0.1:8080/hooks", "http://[::1]:8080/hooks")
    assert target.host_header == "localhost:8080"
    assert target.sni_hostname is None
