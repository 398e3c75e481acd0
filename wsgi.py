"""WSGI entry point for gunicorn and `flask --app wsgi`."""

from booking_service.app import create_app

app = create_app()
