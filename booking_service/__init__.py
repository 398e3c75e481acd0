"""booking_service: the booking backend VAPI voice assistants call."""


def create_app(overrides=None):
    """Build the Flask app (see booking_service.app.create_app)."""
    from booking_service.app import create_app as _create_app

    return _create_app(overrides)
