"""RFC 9457 problem documents: every /api/v1 error, and the words for the use cases'
refusals and input errors (as voice/refusals.py and web/wording.py word them for theirs).
Never SQL, a constraint or a trace: only what the client can act on."""

from __future__ import annotations

from datetime import datetime
from http import HTTPStatus

from flask import Response, json

from booking_service.domain import scheduling
from booking_service.domain.errors import (
    AlreadyStarted,
    CalendarUnavailable,
    CancelledAppointment,
    IdempotencyKeyReused,
    InputError,
    NotFound,
    NothingBookable,
    Refusal,
    StartRefused,
    TooManyUpcoming,
    UnknownResource,
    UnknownService,
    UnverifiedBookingsLimit,
)
from booking_service.use_cases.orgs import OrgInfo

MEDIA_TYPE = "application/problem+json"
# Problem types are relative references under the API (docs/API.md lists them).
TYPE_BASE = "/api/v1/problems/"


def problem_body(
    status: int,
    title: str | None = None,
    detail: str | None = None,
    kind: str | None = None,
    **extensions,
) -> dict:
    """The problem document's members (`kind` names the type; none: about:blank)."""
    body: dict = {
        "type": TYPE_BASE + kind if kind else "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extensions.items() if v is not None})
    return body


def respond(status: int, body: dict, headers: dict | None = None) -> Response:
    """A JSON answer: problem+json for errors, JSON otherwise."""
    media = MEDIA_TYPE if status >= 400 else "application/json"
    return Response(json.dumps(body), status=status, mimetype=media, headers=headers)


def problem(status: int, title: str | None = None, detail: str | None = None, **kw) -> Response:
    return respond(status, problem_body(status, title, detail, **kw))


def http_problem(status: int) -> Response:
    """A plain HTTP error (404 of an unknown path, 405, 413) as a problem document."""
    return problem(status)


def validation_problem(errors: dict, detail: str = "Some values cannot be used.") -> Response:
    return problem(422, "Invalid request", detail, kind="validation", errors=_flat(errors))


def _flat(messages: dict, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's (possibly nested) messages as {field: [messages]}."""
    flat: dict[str, list[str]] = {}
    for key, value in messages.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat(value, name + "."))
        elif isinstance(value, list):
            flat[name] = [str(v) for v in value]
        else:
            flat[name] = [str(value)]
    return flat


def local_iso(moment: datetime, org: OrgInfo) -> str:
    """An instant as ISO 8601 with the organization's offset at that instant."""
    return moment.astimezone(org.zone).isoformat()


_START_TITLES = {
    StartRefused.JUST_TAKEN: "That time was just taken",
    scheduling.TAKEN: "That time is taken",
    scheduling.PAST: "That time has passed",
    scheduling.TOO_SOON: "That time is too soon",
    scheduling.BEYOND_HORIZON: "That time is too far ahead",
    scheduling.CLOSED_DAY: "Closed that day",
    scheduling.OUTSIDE_HOURS: "Outside opening hours",
    scheduling.OFF_GRID: "Appointments do not start at that minute",
    StartRefused.NONEXISTENT: "That local time does not exist",
}


def refusal_problem(refusal: Exception, org: OrgInfo) -> dict:
    """(the body of) a use case's refusal or input error as a problem document."""
    if isinstance(refusal, StartRefused):
        alternatives = [
            {"start": local_iso(slot.start, org), "resource": slot.resource_name}
            for slot in refusal.alternatives
        ]
        return problem_body(
            409,
            _START_TITLES.get(refusal.reason, "That time cannot be booked"),
            "Pick one of the alternatives." if alternatives else None,
            kind="slot-unavailable",
            reason=refusal.reason,
            alternatives=alternatives,
            kept=local_iso(refusal.kept, org) if refusal.kept else None,
        )
    if isinstance(refusal, UnknownService):
        offered = ", ".join(name for name, _ in refusal.offered) or "none"
        return _field(refusal, "service", f"Unknown service. Offered: {offered}.")
    if isinstance(refusal, UnknownResource):
        offered = ", ".join(refusal.offered) or "none"
        return _field(refusal, "resource", f"Unknown resource. Offered: {offered}.")
    if isinstance(refusal, InputError):
        return _field(refusal, refusal.field or "body", refusal.problem)
    if isinstance(refusal, NotFound):
        return problem_body(404, "Not found", f"No such {refusal.what}.", kind="not-found")
    if isinstance(refusal, IdempotencyKeyReused):
        return problem_body(
            422,
            "Idempotency-Key reused",
            "This Idempotency-Key was used for another request; use a new key.",
            kind="idempotency-key-reused",
        )
    titles: list[tuple[type, str, str]] = [
        (TooManyUpcoming, "too-many-upcoming", "This caller holds the most upcoming bookings"),
        (UnverifiedBookingsLimit, "daily-limit", "Today's limit of bookings is reached"),
        (CalendarUnavailable, "calendar-unavailable", "The linked calendar cannot be read"),
        (NothingBookable, "nothing-bookable", "There is nothing to book yet"),
        (AlreadyStarted, "already-started", "The appointment has already started"),
        (CancelledAppointment, "cancelled", "The appointment is cancelled"),
    ]
    for kind_of, kind, title in titles:
        if isinstance(refusal, kind_of):
            return problem_body(409, title, kind=kind)
    if isinstance(refusal, Refusal):
        return problem_body(409, "That cannot be done", kind="refused")
    raise TypeError(f"not a refusal: {type(refusal).__name__}")


def _field(refusal: Exception, field: str, message: str) -> dict:
    return problem_body(
        422, "Invalid request", message, kind="validation", errors={field: [message]}
    )
