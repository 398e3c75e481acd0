"""Marshmallow schemas for tool arguments, and turning their errors into a spoken sentence."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from booking_service.normalize import clean_text, unstorable_character


class SpokenText(fields.String):
    """Text a caller could have said: bounded, storable, whitespace collapsed, empty → None."""

    def __init__(self, *, max_length: int, accept_numbers: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.max_length = max_length
        self.accept_numbers = accept_numbers

    def _deserialize(self, value, attr, data, **kwargs):
        if self.accept_numbers and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # models sometimes send a phone number as a JSON number
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text) > self.max_length:
            raise ValidationError(f"is longer than {self.max_length} characters")
        problem = unstorable_character(text)
        if problem:
            raise ValidationError(f"contains {problem}")
        return clean_text(text)


class LenientInteger(fields.Integer):
    """Whole numbers, also when the model sends them as "30" or 30.0."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)


class BookAppointmentArgs(Schema):
    """Arguments of `bookAppointment`; unknown extra arguments are ignored."""

    class Meta:
        unknown = EXCLUDE

    name = SpokenText(
        max_length=200,
        required=True,
        metadata={"description": "The caller's full name."},
    )
    phone = SpokenText(
        max_length=64,
        accept_numbers=True,
        load_default=None,
        allow_none=True,
        metadata={
            "description": "Phone number; defaults to the number the caller is calling from."
        },
    )
    email = SpokenText(
        max_length=254,
        load_default=None,
        allow_none=True,
        metadata={"description": "Email address, needed when there is no phone number."},
    )
    start = SpokenText(
        max_length=64,
        required=True,
        metadata={
            "description": "Start as ISO 8601, e.g. 2026-12-01T10:00 (local time of the business)."
        },
    )
    durationMinutes = LenientInteger(
        load_default=None,
        allow_none=True,
        strict=False,
        validate=validate.Range(min=5, max=480, error="must be between 5 and 480 minutes"),
        metadata={"description": "Length in minutes; defaults to the business's usual length."},
    )
    service = SpokenText(
        max_length=200,
        load_default=None,
        allow_none=True,
        metadata={"description": "What the appointment is for, e.g. cleaning."},
    )
    notes = SpokenText(
        max_length=2000,
        load_default=None,
        allow_none=True,
        metadata={"description": "Anything the business should know."},
    )

    @validates_schema
    def _name_and_start_present(self, data, **kwargs):
        # Whitespace-only values pass `required` but mean nothing was said.
        missing = {k: ["is missing"] for k in ("name", "start") if k in data and not data[k]}
        if missing:
            raise ValidationError(missing)


_FIELD_WORDS = {
    "name": "the caller's name",
    "phone": "the phone number",
    "email": "the email address",
    "start": "the start time",
    "durationMinutes": "the duration",
    "service": "the service",
    "notes": "the notes",
}


def spoken_errors(error: ValidationError) -> str:
    """One speakable sentence describing what is wrong with the arguments."""
    messages = error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
    parts = []
    for key, problems in messages.items():
        if key == "_schema" or key not in _FIELD_WORDS:
            continue
        words = _FIELD_WORDS[key]
        first = problems[0] if isinstance(problems, list) and problems else "is not valid"
        if first == "Missing data for required field.":
            first = "is missing"
        elif first.startswith("Not a valid") or first.startswith("Invalid"):
            first = "is not in a form I can use"
        parts.append(f"{words} {first}")
    if not parts:
        parts = ["the request details are not in a form I can use"]
    sentence = "; ".join(parts)
    return f"I could not make the booking because {sentence}."
