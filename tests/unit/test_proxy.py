"""Forwarded headers count only from TRUSTED_PROXIES; gunicorn's exposed binds are found."""

from __future__ import annotations

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from booking_service.config import ConfigError, Settings, parse_networks
from booking_service.runtime.proxy import PEER_KEY, TrustedProxies
from booking_service.runtime.startup import exposed_binds


def _echo(environ, start_response):
    seen = f"{environ['REMOTE_ADDR']} {environ['wsgi.url_scheme']} {environ[PEER_KEY]}"
    return Response(seen)(environ, start_response)


def _seen(trusted: str, peer: str, forwarded_for: str) -> str:
    client = Client(TrustedProxies(_echo, parse_networks(trusted)))
    response = client.get(
        "/",
        headers={"X-Forwarded-For": forwarded_for, "X-Forwarded-Proto": "https"},
        environ_base={"REMOTE_ADDR": peer},
    )
    return response.get_data(as_text=True)


def test_a_trusted_proxy_names_the_client_by_its_last_hop():
    assert _seen("127.0.0.1,::1", "127.0.0.1", "10.9.9.9, 203.0.113.9") == (
        "203.0.113.9 https 127.0.0.1"
    )


def test_anyone_else_cannot_claim_to_be_loopback():
    # gunicorn bound beyond loopback: a stranger's X-Forwarded-For: 127.0.0.1 is ignored.
    assert _seen("127.0.0.1,::1", "198.51.100.7", "127.0.0.1") == "198.51.100.7 http 198.51.100.7"


def test_trusted_proxies_may_be_networks():
    assert _seen("10.0.0.0/8", "10.1.2.3", "203.0.113.9").startswith("203.0.113.9 https")
    assert _seen("10.0.0.0/8", "127.0.0.1", "203.0.113.9").startswith("127.0.0.1 http")


def test_a_bad_trusted_proxy_is_a_clear_config_error():
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES: 'nginx' is not an IP"):
        Settings.from_env(
            {"DATABASE_URL": "postgresql+psycopg://u@h/d", "TRUSTED_PROXIES": "127.0.0.1,nginx"}
        ).validate()


def test_binds_beyond_loopback_are_found():
    binds = ["127.0.0.1:8000", "[::1]:8000", "localhost:8000", "unix:/run/b.sock", "127.0.0.2"]
    assert exposed_binds(binds) == []
    exposed = ["0.0.0.0:8000", "[::]:8000", "10.0.0.5:80", "booking.example.com:80"]
    assert exposed_binds(exposed) == exposed
