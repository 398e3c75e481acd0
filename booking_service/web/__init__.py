"""The owner's web page under /app/: server-rendered (Jinja), no JavaScript, every change a
POST with a CSRF token. Modules by area: auth (sign-in, sessions, roles), diary (agenda,
appointments, book by hand), settings (owners only), errors (HTML error pages).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from flask import Blueprint, Flask, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from booking_service.config import Settings

bp = Blueprint(
    "web",
    __name__,
    url_prefix="/app",
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


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, `Secure` on every request but a local plain one. Decided
    per request, not from PUBLIC_URL: a production left at the default PUBLIC_URL, or reached
    by a name PUBLIC_URL does not give, must not send the cookie in clear."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return not plain_local_request()


def init_web(app: Flask, settings: Settings) -> None:
    """Register the pages. Without SECRET_KEY nothing can be signed: the pages then answer 503
    (see auth.load_account) and the rest of the service runs as before."""
    from datetime import timedelta

    from booking_service.web import auth, diary, settings_pages  # noqa: F401  (routes)

    app.config.update(
        SECRET_KEY=session_key(settings.secret_key) if settings.secret_key else None,
        SESSION_COOKIE_NAME="booking_session",
        SESSION_COOKIE_PATH="/app",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
        # Only the pages' forms are checked (bp.before_request): the webhooks authenticate
        # with their own secrets and signatures, and must never need a browser token.
        WTF_CSRF_CHECK_DEFAULT=False,
        # A token lives as long as the signed-in session, so a form left open over lunch works.
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.session_interface = SessionInterface()
    csrf.init_app(app)
    app.register_blueprint(bp)


@bp.after_request
def security_headers(response):
    """The pages' headers: a strict CSP, no framing, no sniffing, no caching of diaries."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "web.static":  # (an error page has no endpoint: no-store too)
        # Diaries are personal data: no shared cache and no back-button copy after sign-out.
        response.headers["Cache-Control"] = "no-store"
    return response
