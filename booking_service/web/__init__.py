"""The owner's web page under /app/: server-rendered (Jinja), no JavaScript, every change a
POST with a CSRF token. Modules by area: auth (sign-in, sessions, roles), diary (agenda,
appointments, book by hand), settings (owners only), errors (HTML error pages).
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from booking_service.config import Settings
from booking_service.web.blueprint import (
    PAGES_PREFIX,
    SESSION_HOURS,
    SessionInterface,
    bp,
    csrf,
    session_key,
)


def init_web(app: Flask, settings: Settings) -> None:
    """Register the pages. Without SECRET_KEY nothing can be signed: the pages then answer 503
    (see auth.load_account) and the rest of the service runs as before."""
    from booking_service.web import (  # noqa: F401  (routes)
        auth,
        calendar_pages,
        diary,
        settings_pages,
        waitlist_page,
    )
    from booking_service.web.manage import manage_bp
    from booking_service.web.oauth_callbacks import oauth_bp

    app.config.update(
        SECRET_KEY=session_key(settings.secret_key) if settings.secret_key else None,
        SESSION_COOKIE_NAME="booking_session",
        SESSION_COOKIE_PATH=PAGES_PREFIX,
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
    app.register_blueprint(oauth_bp)
    # The callers' manage links (/b/<token>): same look and CSRF, no sign-in.
    app.register_blueprint(manage_bp)
