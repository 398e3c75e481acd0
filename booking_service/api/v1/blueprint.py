"""The /api/v1 blueprint: the API key (Bearer) and its scopes, reading a request with a
marshmallow schema, and the errors every endpoint shares, as problem documents."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta

from flask import Blueprint, g, request
from marshmallow import Schema, ValidationError

from booking_service.api.v1.problems import problem, validation_problem
from booking_service.api.v1.schemas import IDEMPOTENCY_KEY_PATTERN
from booking_service.domain.errors import DatabaseUnavailable, OutOfTime
from booking_service.domain.times import utc_now
from booking_service.persistence.unit_of_work import AbstractUnitOfWork, ConnectionScope
from booking_service.runtime.extensions import runtime
from booking_service.use_cases.api_keys import ApiCaller, authenticate_key

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")

# Times a client can mean: within a few years of today (further out, date arithmetic
# overflows and nothing is bookable anyway).
REACH = timedelta(days=5 * 366)


class Rejected(Exception):
    """A request answered before any use case ran (a problem document)."""

    def __init__(self, response):
        super().__init__(response.status)
        self.response = response


def _scope() -> ConnectionScope:
    """The request's one pooled connection (checked out on first use, returned when the
    request ends): a request authenticates and books on one connection. Its units of work
    take the catalogue and opening hours the worker keeps for the organization's version
    (org_cache.py); the version is the one the key's lookup just read, so nothing kept for
    another version is used, and the booking's insert checks it again."""
    if "api_scope" not in g:
        g.api_scope = runtime().connection_scope("api", cached=True)
    return g.api_scope


def uow() -> AbstractUnitOfWork:
    """A unit of work (one transaction) on the request's connection."""
    return _scope().uow()


def _reader() -> AbstractUnitOfWork:
    """A lookup on the request's connection, in autocommit (one round trip)."""
    return _scope().reader()


@bp.teardown_request
def _release(_exc) -> None:
    scope = g.pop("api_scope", None)
    if scope is not None:
        scope.close()


@bp.errorhandler(Rejected)
def _rejected(exc: Rejected):
    return exc.response


@bp.errorhandler(DatabaseUnavailable)
def _unavailable(_exc):
    response = problem(503, "Try again shortly", "The service is briefly unavailable.")
    response.headers["Retry-After"] = "2"
    return response


@bp.errorhandler(OutOfTime)
def _out_of_time(_exc):
    return problem(503, "Try again shortly", "Nothing was changed.")


def _bearer() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def requires(scope: str) -> Callable:
    """Only a request with a good API key that has `scope` runs the view (g.api_caller):
    401 without a good key (unknown, malformed, revoked), 403 without the scope."""

    def wrap(view: Callable) -> Callable:
        @functools.wraps(view)
        def run(*args, **kwargs):
            caller = authenticate_key(_reader(), _bearer())
            if caller is None:
                response = problem(
                    401, "Unauthorized", "Send a valid API key as Authorization: Bearer <key>."
                )
                response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
                return response
            if not caller.may(scope):
                return problem(403, "Forbidden", f"This API key lacks the {scope} scope.")
            g.api_caller = caller
            if request.method == "POST":
                idempotency_key()  # before the body is read: a missing key is the 400
            return view(*args, **kwargs)

        return run

    return wrap


IDEMPOTENCY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


def idempotency_key() -> str:
    """The request's Idempotency-Key; a 400 problem without a usable one."""
    key = request.headers.get(IDEMPOTENCY_HEADER, "")
    if not _IDEMPOTENCY_KEY.match(key):
        detail = (
            f"Send an {IDEMPOTENCY_HEADER} header (a new UUID for each change)."
            if not key
            else f"An {IDEMPOTENCY_HEADER} is 1 to 255 printable ASCII characters."
        )
        raise Rejected(
            problem(400, "Idempotency-Key required", detail, kind="idempotency-key-missing")
        )
    return key


def caller() -> ApiCaller:
    return g.api_caller


def load_query(schema: Schema) -> dict:
    """The query string read with `schema`; a 422 problem for what it refuses."""
    try:
        return schema.load(request.args.to_dict())
    except ValidationError as exc:
        raise Rejected(validation_problem(_messages(exc))) from None


def load_body(schema: Schema, *, optional: bool = False) -> tuple[dict, object]:
    """(the JSON body read with `schema`, the body as sent); 400 for a body that is not a
    JSON object, 422 for values it refuses."""
    raw = request.get_data(cache=True)
    if not raw.strip() and optional:
        body: object = {}
    else:
        body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise Rejected(problem(400, "Bad Request", "The body must be a JSON object."))
    try:
        return schema.load(body), body
    except ValidationError as exc:
        raise Rejected(validation_problem(_messages(exc))) from None


def _messages(exc: ValidationError) -> dict:
    messages = exc.messages
    return messages if isinstance(messages, dict) else {"body": messages}


def within_reach(value: date | datetime, field: str) -> None:
    """422 for a day or time too far from today to mean anything."""
    now = utc_now()
    moment = value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)
    if isinstance(moment, datetime) and moment.tzinfo is None:
        moment = moment.replace(tzinfo=now.tzinfo)
    try:
        near = now - REACH <= moment <= now + REACH
    except OverflowError:  # an offset that takes the instant past year 9999
        near = False
    if not near:
        raise Rejected(validation_problem({field: ["Must be within five years of today."]}))
