"""WSGI entry point for gunicorn and `flask --app wsgi`."""

import sys

from booking_service.app import create_app
from booking_service.config import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    # A missing or malformed setting is the operator's to fix: one line naming the variable,
    # not a traceback through the import machinery of flask or gunicorn.
    sys.exit(f"booking_service: {exc}")
