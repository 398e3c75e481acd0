"""GET /api/v1/openapi.json: the OpenAPI 3.1 document, written by apispec from the same
marshmallow schemas the endpoints load with (api/v1/schemas.py). Served without a key.

Why apispec and not flask-smorest: flask-smorest would register app-wide error handlers and
answer validation errors in its own shape; /api/v1 answers RFC 9457 problem documents and the
rest of the service (the VAPI webhook) must keep its own answers. apispec only writes the
document; the views load with the schemas themselves.
"""

from __future__ import annotations

import functools

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

import booking_service.api.v1.schemas as schemas
from booking_service.api.v1.blueprint import bp
from booking_service.api.v1.problems import respond

_ERRORS = {
    400: "The request cannot be read (no JSON object, no Idempotency-Key).",
    401: "No valid API key.",
    403: "The API key lacks the scope.",
    404: "No such booking.",
    409: "Refused: the time is not free (with alternatives), or the booking cannot change.",
    422: "Invalid values (per-field `errors`), or an Idempotency-Key reused.",
    503: "Briefly unavailable; try again.",
}
_IDEMPOTENCY = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": True,
    "description": "A new key (a UUID) per change; a repeat gets the first answer.",
    "schema": {"type": "string", "pattern": schemas.IDEMPOTENCY_KEY_PATTERN},
}
_REFERENCE = {
    "in": "path",
    "name": "reference",
    "required": True,
    "schema": {"type": "string", "pattern": schemas.REFERENCE_PATTERN},
}


def _json(schema) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _operation(summary: str, scope: str, ok: int, ok_schema, ok_text: str, codes, **extra):
    responses: dict = {str(ok): {"description": ok_text, **_json(ok_schema)}}
    for code in codes:
        responses[str(code)] = {
            "description": _ERRORS[code],
            "content": {"application/problem+json": {"schema": "Problem"}},
        }
    return {
        "summary": summary,
        "description": f"Scope: `{scope}`.",
        "security": [{"apiKey": []}],
        "responses": responses,
        **extra,
    }


@functools.cache
def document() -> dict:
    """The OpenAPI 3.1 document of /api/v1 (built once)."""
    spec = APISpec(
        title="booking_service API",
        version="1.0.0",
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={
            "description": (
                "Slots and bookings of one business, per API key. Times are ISO 8601 with "
                "the business's offset. Errors are RFC 9457 problem documents."
            )
        },
        servers=[{"url": "/"}],
    )
    spec.components.security_scheme("apiKey", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Problem", schema=schemas.Problem)
    spec.components.schema("Booking", schema=schemas.BookingOut)
    write = (400, 401, 403, 404, 409, 422, 503)
    spec.path(
        path="/api/v1/slots",
        operations={
            "get": _operation(
                "Free starts of a day or a window",
                "slots:read",
                200,
                schemas.SlotList,
                "Free starts, soonest first.",
                (401, 403, 409, 422, 503),
                parameters=[{"in": "query", "schema": schemas.SlotsQuery}],
            )
        },
    )
    spec.path(
        path="/api/v1/bookings",
        operations={
            "get": _operation(
                "The bookings of some days",
                "bookings:read",
                200,
                schemas.BookingList,
                "Bookings (cancelled ones too), soonest first.",
                (401, 403, 422, 503),
                parameters=[{"in": "query", "schema": schemas.BookingsQuery}],
            ),
            "post": _operation(
                "Book",
                "bookings:write",
                201,
                "Booking",
                "Booked.",
                (400, 401, 403, 409, 422, 503),
                parameters=[_IDEMPOTENCY],
                requestBody={"required": True, **_json(schemas.BookingIn)},
            ),
        },
    )
    spec.path(
        path="/api/v1/bookings/{reference}",
        operations={
            "get": _operation(
                "One booking",
                "bookings:read",
                200,
                "Booking",
                "The booking.",
                (401, 403, 404, 503),
                parameters=[_REFERENCE],
            )
        },
    )
    spec.path(
        path="/api/v1/bookings/{reference}/cancel",
        operations={
            "post": _operation(
                "Cancel",
                "bookings:write",
                200,
                "Booking",
                "Cancelled (or cancelled before).",
                write,
                parameters=[_REFERENCE, _IDEMPOTENCY],
                requestBody={"required": False, **_json(schemas.CancelIn)},
            )
        },
    )
    spec.path(
        path="/api/v1/bookings/{reference}/reschedule",
        operations={
            "post": _operation(
                "Move to another start",
                "bookings:write",
                200,
                "Booking",
                "Moved (same reference).",
                write,
                parameters=[_REFERENCE, _IDEMPOTENCY],
                requestBody={"required": True, **_json(schemas.RescheduleIn)},
            )
        },
    )
    return spec.to_dict()


@bp.get("/openapi.json")
def openapi_json():
    """The OpenAPI document (no key needed)."""
    return respond(200, document())
