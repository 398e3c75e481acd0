"""The web blueprint and what every page shares: the session cookie, the CSRF extension, the
security headers. The pages (auth, diary, settings_pages, errors) import it; the package's
`init_web` imports them and registers it."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from flask import Blueprint, Flask, Request, g, has_request_context, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

# Where the owner's pages live (and their session cookie's path, SESSION_COOKIE_PATH).
PAGES_PREFIX = "/app"
bp = Blueprint(
    "web",
    __name__,
    url_prefix=PAGES_PREFIX,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
csrf = CSRFProtect()

# Everything the pages load comes from this origin; there is no script at all, so no inline
# script can run even if some text escaped escaping.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SESSION_HOURS = 12
# Where the callers' manage links live (web/manage.py).
MANAGE_PREFIX = "/b"


def session_key(secret_key: str) -> str:
    """The key that signs session cookies and CSRF tokens, derived from SECRET_KEY so that the
    key sealing stored credentials is never used for anything else."""
    return hmac.new(secret_key.encode(), b"booking_service web session", hashlib.sha256).hexdigest()


def plain_local_request() -> bool:
    """Whether this request came over plain HTTP to a loopback host (`make run` on
    127.0.0.1:8000, a browser on localhost): the only case a session cookie may go without
    `Secure`. Browsers treat such origins as secure contexts; anywhere else a cookie sent in
    clear could be read on the way. Behind nginx the scheme and host are the client's
    (X-Forwarded-Proto/-Host from a trusted proxy), so production is always `Secure`."""
    if not has_request_context() or request.scheme != "http":
        return False
    given = request.host or ""
    host = given[1 : given.find("]")] if given.startswith("[") else given.rsplit(":", 1)[0]
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _carries_the_cookie(path: str) -> bool:
    """Whether a browser sends a session cookie with a request for `path`: the cookie's path is
    /app (the owner's pages) or /b (a caller's manage page), and a cookie path matches itself
    and what lies below it, never "/apple"."""
    for prefix in (PAGES_PREFIX, MANAGE_PREFIX):
        if path == prefix or path.startswith(prefix + "/"):
            return True
    return False


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, `Secure` on every request but a local plain one. Decided
    per request, not from PUBLIC_URL: a production left at the default PUBLIC_URL, or reached
    by a name PUBLIC_URL does not give, must not send the cookie in clear.

    Only the pages have one. Every other request (the voice platforms' tools, the REST API,
    the SMS replies, health) gets Flask's null session: no cookie is ever sent to those paths,
    so a session there would always be empty, and opening it (a signing serializer built
    afresh) and saving it cost about 2% of a booking's Python under load (#30). Writing to the
    null session raises, so nothing can set a cookie from those paths unnoticed."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not _carries_the_cookie(request.path):
            return self.make_null_session(app)
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        return not plain_local_request()

    def get_cookie_path(self, app: Flask) -> str:
        """/b for the callers' manage pages (their own cookie, holding only a CSRF token),
        SESSION_COOKIE_PATH (/app) for everything else: neither is sent to the other."""
        if has_request_context() and request.path.startswith(MANAGE_PREFIX + "/"):
            return MANAGE_PREFIX
        return super().get_cookie_path(app)


@bp.after_request
def security_headers(response):
    """The pages' headers: a strict CSP, no framing, no sniffing, no caching of diaries."""
    policy = CONTENT_SECURITY_POLICY
    extra = g.get("form_targets") if has_request_context() else None
    if extra:
        # The calendar "Connect" forms lead to the provider's consent page (a redirect after
        # the POST, which form-action also governs).
        policy = policy.replace("form-action 'self'", "form-action 'self' " + " ".join(extra))
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "web.static":  # (an error page has no endpoint: no-store too)
        # Diaries are personal data: no shared cache and no back-button copy after sign-out.
        response.headers["Cache-Control"] = "no-store"
    return response
