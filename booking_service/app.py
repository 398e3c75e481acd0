"""The application factory: config → logging → engine/sessions → blueprints, errors, CLI.

No query runs here: the engine connects lazily, so a pre-forking server never shares a
pooled connection across workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from booking_service.api.errors import register_error_handlers
from booking_service.api.health import bp as health_bp
from booking_service.api.ical import bp as ical_bp
from booking_service.api.metrics import bp as metrics_bp
from booking_service.api.twilio import bp as twilio_bp
from booking_service.api.v1.problems import http_problem
from booking_service.api.v1.register import init_api_v1
from booking_service.cli import register_cli
from booking_service.config import Settings, parse_networks
from booking_service.persistence.db import make_engine, make_session_factory
from booking_service.persistence.schema_check import head_revision
from booking_service.persistence.secrets_box import SecretBox
from booking_service.runtime.admission import Admission
from booking_service.runtime.extensions import Runtime, init_runtime
from booking_service.runtime.logging_setup import configure_logging
from booking_service.runtime.proxy import TrustedProxies
from booking_service.voice.elevenlabs.blueprint import bp as elevenlabs_bp
from booking_service.voice.retell.blueprint import bp as retell_bp
from booking_service.voice.vapi.blueprint import bp as vapi_bp
from booking_service.web import init_web
from booking_service.web.errors import error_page


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app from the environment, with optional setting overrides (tests)."""
    settings = Settings.from_env().with_overrides(overrides).validate()
    configure_logging(settings.log_level, settings.log_format)

    app = Flask(__name__)
    app.config.update(
        TESTING=settings.testing,
        # One byte more than allowed, so that the webhook can tell "too large" from "exactly
        # at the limit" for chunked bodies (werkzeug cuts them silently at this length).
        MAX_CONTENT_LENGTH=settings.max_body_bytes + 1,
        JSON_SORT_KEYS=False,
    )
    # Flask's default provider has these settings; the base type does not declare them.
    if isinstance(app.json, DefaultJSONProvider):
        app.json.sort_keys = False
        app.json.compact = True

    engine = make_engine(settings)
    init_runtime(
        app,
        Runtime(
            settings=settings,
            engine=engine,
            session_factory=make_session_factory(engine),
            head_revision=head_revision(),
            admission=Admission(settings.max_concurrent_per_org),
            secrets=SecretBox.from_settings(settings),
        ),
    )

    app.register_blueprint(vapi_bp)
    app.register_blueprint(retell_bp)
    app.register_blueprint(elevenlabs_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(metrics_bp)
    app.register_blueprint(twilio_bp)
    app.register_blueprint(ical_bp)
    init_api_v1(app)
    init_web(app, settings)
    register_error_handlers(app, pages=("/app", error_page), problems=("/api/v1", http_problem))
    register_cli(app)
    # Exactly one proxy hop (nginx) is trusted, and only when it is the socket peer: a
    # client-sent X-Forwarded-For is not believed, only the address nginx appends.
    app.wsgi_app = TrustedProxies(  # type: ignore[method-assign]  # Flask's documented way
        app.wsgi_app, parse_networks(settings.trusted_proxies)
    )
    return app
