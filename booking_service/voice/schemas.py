"""Marshmallow schemas for tool arguments, and turning their errors into a spoken sentence."""

from __future__ import annotations

import math

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from booking_service.domain.normalize import clean_name, clean_text, unstorable_character


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


class NameText(SpokenText):
    """A person's name: control and format characters (zero-width, direction marks) are
    removed rather than refused, and it is cut to 80 characters; it is read back later."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = fields.String._deserialize(self, value, attr, data, **kwargs)
        if len(text) > self.max_length:
            raise ValidationError(f"is longer than {self.max_length} characters")
        if unstorable_character(text) == "an invalid character":
            raise ValidationError("contains an invalid character")
        return clean_name(text)


class LenientInteger(fields.Integer):
    """Whole numbers, also when the model sends them as "30" or 30.0; never 45.5 cut to 45."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, float):
            if not math.isfinite(value):
                raise self.make_error("invalid")
            if not value.is_integer():
                raise ValidationError("must be a whole number of minutes")
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)


def _text(description: str, max_length: int = 200, **kwargs) -> SpokenText:
    return SpokenText(
        max_length=max_length,
        load_default=None,
        allow_none=True,
        metadata={"description": description},
        **kwargs,
    )


def _minutes(description: str) -> LenientInteger:
    return LenientInteger(
        load_default=None,
        allow_none=True,
        strict=False,
        validate=validate.Range(min=5, max=480, error="must be between 5 and 480 minutes"),
        metadata={"description": description},
    )


def _phone() -> SpokenText:
    return _text(
        "Phone number; defaults to the number the caller is calling from.",
        max_length=64,
        accept_numbers=True,
    )


def _email(description: str = "Email address, needed when there is no phone number.") -> SpokenText:
    return _text(description, max_length=254)


def _resource() -> SpokenText:
    return _text("Who or what to book with (a person, chair or room), if the caller asks.")


class ToolArgs(Schema):
    """Base for tool arguments: unknown extra arguments are ignored."""

    class Meta:
        unknown = EXCLUDE

    #: Arguments that must be non-blank after trimming (`required` accepts "   ").
    non_blank: tuple[str, ...] = ()

    @validates_schema
    def _non_blank(self, data, **kwargs):
        missing = {k: ["is missing"] for k in self.non_blank if k in data and not data[k]}
        if missing:
            raise ValidationError(missing)


class BookAppointmentArgs(ToolArgs):
    """Arguments of `bookAppointment`."""

    non_blank = ("name", "start")

    name = NameText(
        max_length=200,
        required=True,
        metadata={"description": "The full name of the person the appointment is for."},
    )
    phone = _phone()
    email = _email()
    start = SpokenText(
        max_length=64,
        required=True,
        metadata={
            "description": "Start as ISO 8601, e.g. 2026-12-01T10:00 (local time of the business)."
        },
    )
    durationMinutes = _minutes(
        "Length in minutes; defaults to the service's or the business's usual length."
    )
    service = _text("What the appointment is for, e.g. cleaning.")
    notes = _text("Anything the business should know.", max_length=2000)
    resource = _resource()


class CheckAvailabilityArgs(ToolArgs):
    """Arguments of `checkAvailability`."""

    date = _text("A local date, YYYY-MM-DD.", max_length=32)
    from_ = _text(
        "Start of the window (ISO 8601 date or date-time, local time).",
        max_length=64,
        data_key="from",
    )
    to = _text("End of the window (ISO 8601 date or date-time, local time).", max_length=64)
    service = _text("The service wanted, e.g. cleaning (sets the length).")
    durationMinutes = _minutes("Length in minutes, if no service is named.")
    resource = _resource()


def _proof_phone() -> SpokenText:
    return _text(
        "The phone number the booking was made with; needed with the reference when the "
        "call is not from that phone.",
        max_length=64,
        accept_numbers=True,
    )


def _proof_email() -> SpokenText:
    return _email(
        "Or the email address the booking was made with; needed with the reference when the "
        "call is not from the booking's phone."
    )


class FindAppointmentsArgs(ToolArgs):
    """Arguments of `findAppointments`."""

    reference = _text("A booking reference, e.g. K7M2QX.", max_length=32)
    phone = _proof_phone()
    email = _proof_email()


class OwnAppointmentArgs(ToolArgs):
    """Identifies one of the caller's own appointments: by reference or by current start."""

    reference = _text("The booking reference, e.g. K7M2QX.", max_length=32)
    start = _text("Or the appointment's current start (ISO 8601, local time).", max_length=64)
    phone = _proof_phone()
    email = _proof_email()

    @validates_schema
    def _reference_or_start(self, data, **kwargs):
        if not data.get("reference") and not data.get("start"):
            raise ValidationError({"reference": ["or the current start time is needed"]})


class CancelAppointmentArgs(OwnAppointmentArgs):
    """Arguments of `cancelAppointment`."""

    reason = _text("Why the caller cancels, if they say.", max_length=500)


class RescheduleAppointmentArgs(OwnAppointmentArgs):
    """Arguments of `rescheduleAppointment`."""

    non_blank = ("newStart",)

    newStart = SpokenText(
        max_length=64,
        required=True,
        metadata={"description": "The new start, ISO 8601 (local time of the business)."},
    )


class JoinWaitlistArgs(ToolArgs):
    """Arguments of `joinWaitlist` (#29)."""

    non_blank = ("name",)

    name = NameText(
        max_length=200,
        required=True,
        metadata={"description": "The full name of the person waiting."},
    )
    service = _text("What the appointment would be for, e.g. cleaning (sets the length).")
    durationMinutes = _minutes("Length in minutes, if no service is named.")
    date = _text("The local date wanted, YYYY-MM-DD.", max_length=32)
    from_ = _text(
        "Or the start of the window (ISO 8601 date or date-time, local time).",
        max_length=64,
        data_key="from",
    )
    to = _text("End of the window (ISO 8601 date or date-time, local time).", max_length=64)
    partOfDay = _text("Preferred part of the day: morning, afternoon, evening or any.", 16)


_FIELD_WORDS = {
    "name": "the caller's name",
    "resource": "the resource",
    "date": "the date",
    "from": "the start of the window",
    "to": "the end of the window",
    "reference": "the booking reference",
    "reason": "the reason",
    "newStart": "the new start time",
    "phone": "the phone number",
    "email": "the email address",
    "start": "the start time",
    "durationMinutes": "the duration",
    "service": "the service",
    "notes": "the notes",
    "partOfDay": "the part of the day",
}


def spoken_errors(error: ValidationError, action: str = "make the booking") -> str:
    """One speakable sentence describing what is wrong with the arguments."""
    messages = error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
    parts = []
    for key, problems in messages.items():
        if key == "_schema" or key not in _FIELD_WORDS:
            continue
        words = _FIELD_WORDS[key]
        first = problems[0] if isinstance(problems, list) and problems else ""
        if not isinstance(first, str):
            first = ""
        if first in ("Missing data for required field.", "Field may not be null."):
            first = "is missing"
        elif not first or first[0].isupper():
            # marshmallow's own messages ("Not a valid integer.", "Number too large.") read
            # badly after a field name; ours start in lower case and are kept.
            first = "is not in a form I can use"
        parts.append(f"{words} {first}")
    if not parts:
        parts = ["the request details are not in a form I can use"]
    sentence = "; ".join(parts)
    return f"I could not {action} because {sentence}."


# The JSON Schema of each tool's arguments, for every platform's tool definitions.
def _property(field: fields.Field) -> dict:
    if isinstance(field, LenientInteger):
        prop: dict = {"type": "integer"}
        for validator in field.validators:
            if isinstance(validator, validate.Range):
                if validator.min is not None:
                    prop["minimum"] = validator.min
                if validator.max is not None:
                    prop["maximum"] = validator.max
    elif isinstance(field, SpokenText):
        prop = {"type": "string", "maxLength": field.max_length}
    else:  # pragma: no cover - every argument field is one of the two above
        raise TypeError(f"no JSON Schema mapping for {type(field).__name__}")
    description = field.metadata.get("description")
    if description:
        prop["description"] = description
    return prop


def parameters_schema(schema: type[Schema]) -> dict:
    """The JSON Schema (object) describing a tool's arguments."""
    properties = {}
    required = []
    for name, field in schema().fields.items():
        key = field.data_key or name
        properties[key] = _property(field)
        if field.required:
            required.append(key)
    result: dict = {"type": "object", "properties": properties}
    if required:
        result["required"] = required
    return result
