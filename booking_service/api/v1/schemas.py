"""The marshmallow schemas of /api/v1: what each endpoint reads and answers. The same classes
load the requests (api/v1/slots.py, bookings.py) and write the OpenAPI document (openapi.py).
"""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

# What a text value may not contain: control characters (line breaks only in notes), DEL and
# lone surrogates, which PostgreSQL cannot store and no client means.
_BAD = {*range(0x00, 0x20), 0x7F, *range(0xD800, 0xE000)}


def _plain(allow_lines: bool = False):
    allowed = {0x0A, 0x09} if allow_lines else set()

    def check(value: str) -> None:
        if any(ord(ch) in _BAD and ord(ch) not in allowed for ch in value):
            raise ValidationError("Contains control characters.")

    return check


def _text(max_length: int, *, required: bool = False, lines: bool = False, **kwargs):
    return fields.String(
        required=required,
        validate=[validate.Length(min=1, max=max_length), _plain(lines)],
        **kwargs,
    )


# An Idempotency-Key: printable ASCII (a UUID is typical), as a header can carry it.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7E]{1,255}$"
REFERENCE_PATTERN = r"^[A-Za-z0-9-]{1,32}$"
MAX_WINDOW_DAYS = 31
MAX_LISTED_DAYS = 7


class SlotsQuery(Schema):
    """GET /api/v1/slots: one day (`date`) or a window of days (`from`, `to`)."""

    date = fields.Date(metadata={"description": "A local day, YYYY-MM-DD."})
    from_ = fields.Date(data_key="from", metadata={"description": "First local day."})
    to = fields.Date(metadata={"description": f"Last local day (at most {MAX_WINDOW_DAYS})."})
    service = _text(200, metadata={"description": "A service's name; its length applies."})
    resource = _text(200, metadata={"description": "A resource's name (a person, a room)."})
    durationMinutes = fields.Integer(
        validate=validate.Range(min=5, max=480),
        metadata={"description": "Length, when no service is named."},
    )

    @validates_schema
    def _one_window(self, data, **_kwargs):
        if "date" in data and ("from_" in data or "to" in data):
            raise ValidationError("Give either date or from/to.", "date")
        if "to" in data and "from_" not in data:
            raise ValidationError("Give from with to.", "from")
        if "from_" in data and "to" in data:
            if data["to"] < data["from_"]:
                raise ValidationError("Must not be before from.", "to")
            if (data["to"] - data["from_"]).days >= MAX_WINDOW_DAYS:
                raise ValidationError(f"At most {MAX_WINDOW_DAYS} days from from.", "to")


class SlotOut(Schema):
    start = fields.String(required=True, metadata={"format": "date-time"})
    end = fields.String(required=True, metadata={"format": "date-time"})
    resource = fields.String(required=True)


class SlotList(Schema):
    slots = fields.List(fields.Nested(SlotOut), required=True)


class BookingIn(Schema):
    """POST /api/v1/bookings."""

    start = fields.AwareDateTime(
        required=True,
        metadata={"description": "ISO 8601 with its offset, e.g. 2026-12-08T10:00:00-05:00."},
    )
    name = _text(200, required=True)
    phone = _text(40, metadata={"description": "The caller's phone; phone or email is needed."})
    email = _text(254)
    service = _text(200)
    resource = _text(200)
    notes = _text(1000, lines=True)

    @validates_schema
    def _reachable(self, data, **_kwargs):
        if not data.get("phone") and not data.get("email"):
            raise ValidationError("Give a phone or an email.", "phone")


class RescheduleIn(Schema):
    """POST /api/v1/bookings/{reference}/reschedule."""

    start = fields.AwareDateTime(required=True, metadata={"description": "The new start."})


class CancelIn(Schema):
    """POST /api/v1/bookings/{reference}/cancel (the body may be empty)."""

    reason = _text(500)


class BookingsQuery(Schema):
    """GET /api/v1/bookings: the bookings of `days` local days from `date` (today)."""

    date = fields.Date()
    days = fields.Integer(validate=validate.Range(min=1, max=MAX_LISTED_DAYS))


class BookingOut(Schema):
    reference = fields.String(required=True)
    start = fields.String(required=True, metadata={"format": "date-time"})
    end = fields.String(required=True, metadata={"format": "date-time"})
    status = fields.String(
        required=True,
        validate=validate.OneOf(["booked", "cancelled", "completed", "no_show"]),
    )
    resource = fields.String(required=True)
    service = fields.String(required=True, allow_none=True)
    name = fields.String(allow_none=True)


class BookingList(Schema):
    bookings = fields.List(fields.Nested(BookingOut), required=True)


class AlternativeOut(Schema):
    start = fields.String(required=True, metadata={"format": "date-time"})
    resource = fields.String(required=True)


class Problem(Schema):
    """RFC 9457 problem details; extension members as the type says."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "Per field (body or query), what is wrong."},
    )
    alternatives = fields.List(
        fields.Nested(AlternativeOut),
        metadata={"description": "The nearest free starts (slot-unavailable)."},
    )
    reason = fields.String(metadata={"description": "Why a start cannot be booked."})
    kept = fields.String(
        metadata={"format": "date-time", "description": "Where a moved booking stays."}
    )
