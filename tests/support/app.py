"""The app the tests build: `make_app` with the test secret key and a client that checks every
answer, and `Org`, an organization with its plain secret (the conftest fixtures hand these out;
tests that need their own settings call `make_app` themselves)."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import pydantic
from flask.testing import FlaskClient
from vapi.types import ServerMessageResponseToolCalls  # lazy package: ~0.1 s, once per run

from booking_service.app import create_app

FORBIDDEN_IN_RESPONSES = ("constraint", "psycopg", "SELECT", "Traceback")


# Every answer to a VAPI tool-calls message must be what VAPI parses: the official SDK's model.
VAPI_TOOLS_PATH = "/api/vapi/tools"


def check_vapi_tools_response(method: str, path: str, status: int, body: str, is_json: bool):
    """Fail unless a 200 answer with `results` to a POST on /api/vapi/tools* is a valid
    `ServerMessageResponseToolCalls` whose every `toolCallId` and `name` is a string."""
    if method != "POST" or not path.startswith(VAPI_TOOLS_PATH) or status != 200:
        return
    try:
        data = json.loads(body)
    except ValueError:
        return
    if not isinstance(data, dict) or "results" not in data:
        return
    where = f"POST {path} answered a body VAPI cannot use"
    assert is_json, f"{where}: not served as application/json: {body[:300]}"
    try:
        ServerMessageResponseToolCalls.model_validate(data)
    except pydantic.ValidationError as exc:
        raise AssertionError(
            f"{where} (invalid ServerMessageResponseToolCalls): {exc}\nbody: {body[:300]}"
        ) from None
    results = data["results"]
    assert isinstance(results, list), f"{where}: `results` is not a list: {body[:300]}"
    for index, entry in enumerate(results):
        # The model would also take `tool_call_id` (it maps field names to aliases); VAPI
        # matches results to calls by `toolCallId` only.
        for key in ("toolCallId", "name"):
            assert isinstance(entry.get(key), str), (
                f"{where}: results[{index}].{key} is {entry.get(key)!r}, not a string: {body[:300]}"
            )


class CheckedClient(FlaskClient):
    """A test client that fails the test if any response leaks internals, or if an answer to
    a VAPI tool-calls message is not what the official Vapi SDK describes."""

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        body = response.get_data(as_text=True)
        for word in FORBIDDEN_IN_RESPONSES:
            assert word not in body, f"response leaks {word!r}: {body[:300]}"
        check_vapi_tools_response(
            response.request.method,
            response.request.path,
            response.status_code,
            body,
            response.is_json,
        )
        return response


# Stored secrets are sealed with it (tests that rotate it pass their own).
TEST_SECRET_KEY = "test-secret-key-" + "0" * 24


def make_app(url: str, **overrides):
    app = create_app(
        {"DATABASE_URL": url, "TESTING": True, "SECRET_KEY": TEST_SECRET_KEY, **overrides}
    )
    app.test_client_class = CheckedClient
    return app


class Org:
    """An organization created for a test, with its plain secret and helpers to call the webhook."""

    def __init__(self, info, secret: str):
        self.info = info
        self.id = info.id
        self.secret = secret
        self.zone = ZoneInfo(info.timezone)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}
