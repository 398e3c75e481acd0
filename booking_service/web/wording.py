"""How the owner's pages word an input error (domain/errors.InputError): the form field's label
and the problem, and which field to mark (`aria-invalid`, styled in app.css)."""

from __future__ import annotations

from markupsafe import Markup

from booking_service.domain.errors import InputError

# Labels the settings page shows for its fields, where the field's name does not read well.
LABELS = {
    "slot_minutes": "Start times every (minutes)",
    "min_notice_minutes": "Minimum notice (minutes)",
    "horizon_days": "Booking horizon (days)",
    "buffer_minutes": "Buffer after each appointment (minutes)",
    "max_upcoming_per_caller": "Upcoming appointments per caller",
    "quiet_hours": "Quiet hours",
    "grace_minutes": "Grace period (minutes)",
    "scopes": "Scopes:",
}


def input_error_text(exc: InputError) -> str:
    """The problem, after the label of its field when there is one."""
    if exc.field is None:
        return exc.problem
    label = LABELS.get(exc.field, exc.field.replace("_", " ").capitalize())
    return f"{label} {exc.problem}"


def invalid_marker(error_field: str | None):
    """For templates: `{{ invalid('slot_minutes') }}` inside a field's tag marks it invalid
    and points it at the page's error message when it is the field at fault."""

    def invalid(name: str) -> Markup:
        if name != error_field:
            return Markup("")
        return Markup(' aria-invalid="true" aria-describedby="form-error"')

    return invalid
