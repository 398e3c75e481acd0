"""Which peers may speak for the client: X-Forwarded-* only from TRUSTED_PROXIES.

werkzeug's ProxyFix believes the forwarded headers of whoever connects. With gunicorn reachable
beyond loopback, anyone could then claim `X-Forwarded-For: 127.0.0.1` and pass loopback-only
checks. Here the socket peer decides: from a trusted proxy (nginx on this host, by default) the
headers are applied as ProxyFix does for one hop; from anyone else they are ignored. The socket
peer is kept in the environ for checks that must not depend on headers at all (/metrics).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from werkzeug.middleware.proxy_fix import ProxyFix

from booking_service.config import Network

PEER_KEY = "booking_service.peer"
# True when the socket peer is a trusted proxy: its other headers (X-Request-Start) count too.
TRUSTED_KEY = "booking_service.from_trusted_proxy"


def peer_in(address: str | None, networks: Iterable[Network]) -> bool:
    """Whether a socket peer address lies in one of `networks` (False for other non-IP
    peers). A Unix socket's peer (gunicorn reports it as "") counts as local: only processes
    on this machine, with the socket's file permissions, can connect to it."""
    if address == "":
        return True
    try:
        ip = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def is_loopback(address: str | None) -> bool:
    """Whether an address is loopback (127.0.0.0/8, ::1, IPv4-mapped loopback, or the ""
    peer of a Unix socket)."""
    return peer_in(address, (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1")))


class TrustedProxies:
    """WSGI middleware: ProxyFix (one hop) for requests from trusted peers only."""

    def __init__(self, app, networks: tuple[Network, ...]):
        self.app = app
        self.networks = networks
        self.fixed = ProxyFix(app, x_for=1, x_proto=1, x_host=1)

    def __call__(self, environ, start_response):
        peer = environ.get("REMOTE_ADDR")
        environ[PEER_KEY] = peer
        environ[TRUSTED_KEY] = peer_in(peer, self.networks)
        if environ[TRUSTED_KEY]:
            return self.fixed(environ, start_response)
        return self.app(environ, start_response)
