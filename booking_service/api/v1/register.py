"""Registers /api/v1 on the app: the endpoints' modules, then the blueprint."""

from __future__ import annotations

from flask import Flask

from booking_service.api.v1.blueprint import bp


def init_api_v1(app: Flask) -> None:
    """Register the endpoints and the OpenAPI document."""
    from booking_service.api.v1 import bookings, openapi, slots  # noqa: F401  (routes)

    app.register_blueprint(bp)
