"""Shared fixtures: a throwaway PostgreSQL cluster, migrated template databases, apps, clients.

`make test` runs pytest inside a throwaway cluster and passes it as BOOKING_TEST_PG; a plain
`pytest` starts its own. Either way the tests never touch a developer's database or a server
that happens to run on the machine. Each test gets its own database, cloned from a template
that `alembic upgrade head` built (the same path production takes).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pydantic
import pytest
from alembic import command
from flask.testing import FlaskClient
from pytest_postgresql import factories
from pytest_postgresql.janitor import DatabaseJanitor
from vapi.types import ServerMessageResponseToolCalls  # lazy package: ~0.1 s, once per run

from booking_service.app import create_app
from booking_service.devtools import pgcluster
from booking_service.persistence.schema_check import alembic_config
from booking_service.runtime.extensions import KEY
from booking_service.use_cases.orgs import create_org
from tests.helpers import local_start

# Copied from the shared VAPI fixtures so that a fresh clone is self-contained.
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "vapi"
FORBIDDEN_IN_RESPONSES = ("constraint", "psycopg", "SELECT", "Traceback")

_cluster = None


def pytest_configure(config: pytest.Config) -> None:
    """Point pytest-postgresql at the run's own cluster, starting one if none was given."""
    global _cluster
    given = os.environ.get("BOOKING_TEST_PG")
    if given:
        host, _, port = given.rpartition(":")
    else:
        _cluster = pgcluster.throwaway_cluster()
        host, port = "127.0.0.1", str(_cluster.__enter__())
    config.option.postgresql_host = host
    config.option.postgresql_port = port
    config.option.postgresql_user = pgcluster.SUPERUSER


def pytest_unconfigure(config: pytest.Config) -> None:
    if _cluster is not None:
        _cluster.__exit__(None, None, None)


def url_of(host: str, port: int | str, dbname: str, user: str = pgcluster.SUPERUSER) -> str:
    return f"postgresql+psycopg://{user}@{host}:{port}/{dbname}"


def migrate(host, port, user, dbname, password=None, **_kwargs) -> None:
    """pytest-postgresql loader: build the template schema with alembic, as production does."""
    cfg = alembic_config(url_of(host, port, dbname, user))
    cfg.attributes["skip_logging_config"] = True
    command.upgrade(cfg, "head")


postgresql_migrated = factories.postgresql_noproc(dbname="bs_migrated", load=[migrate])
postgresql_blank = factories.postgresql_noproc(dbname="bs_blank")
db = factories.postgresql("postgresql_migrated")


@pytest.fixture(scope="module")
def module_database(postgresql_migrated, request) -> Iterator[str]:
    """A database for one module, cloned from the migrated template and dropped after.

    The per-test `database_url` fixture is function-scoped; a module that starts servers (the
    stack tests) clones the same template once, so one server start serves all its tests.
    """
    template = postgresql_migrated
    module = request.module.__name__.rsplit(".", 1)[-1]
    dbname = f"bs_{module}_{uuid.uuid4().hex[:8]}"
    with DatabaseJanitor(
        user=template.user,
        host=template.host,
        port=template.port,
        password=template.password,
        dbname=dbname,
        template_dbname=template.template_dbname,
    ):
        yield url_of(template.host, template.port, dbname, template.user)


@pytest.fixture(scope="session")
def nginx_binary() -> Path:
    """Debian's nginx, installed once per session when missing (root) or a skip (others)."""
    from tests import stack

    try:
        return stack.ensure_nginx()
    except stack.NginxUnavailable as exc:
        pytest.skip(str(exc))


blank_db = factories.postgresql("postgresql_blank")


def conn_url(conn: psycopg.Connection) -> str:
    info = conn.info
    return url_of(info.host, info.port, info.dbname, info.user)


@pytest.fixture
def database_url(db: psycopg.Connection) -> str:
    """URL of this test's own freshly migrated database."""
    db.autocommit = True
    return conn_url(db)


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


@pytest.fixture
def app(database_url: str):
    application = make_app(database_url)
    yield application
    application.extensions[KEY].engine.dispose()


@pytest.fixture
def client(app) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runtime(app):
    return app.extensions[KEY]


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


@pytest.fixture
def make_org(runtime):
    def _make(name="Bright Smile Dental", timezone="America/New_York", **kwargs) -> Org:
        created = create_org(runtime.uow(), name=name, timezone=timezone, **kwargs)
        return Org(created.org, created.secret)

    return _make


@pytest.fixture
def org(make_org) -> Org:
    return make_org()


@pytest.fixture
def fixture_body():
    """Load a shared VAPI payload with its starts moved into the future (the files' dates age).

    The n-th tool call gets a start n weeks after the first, in the same local hour.
    """

    def _load(name: str) -> dict:
        body = json.loads((FIXTURES / name).read_text())
        for key in ("toolCallList", "toolCalls"):
            for index, call in enumerate(body["message"].get(key, [])):
                args = call["function"]["arguments"]
                decoded = json.loads(args) if isinstance(args, str) else args
                hour = int(decoded["start"][11:13])
                decoded["start"] = local_start(days=7 + 7 * index, hour=hour)
                call["function"]["arguments"] = (
                    json.dumps(decoded) if isinstance(args, str) else decoded
                )
        return body

    return _load


@pytest.fixture
def blank_url(blank_db: psycopg.Connection) -> Iterator[str]:
    """URL of an empty database (no tables), for migration tests."""
    blank_db.autocommit = True
    yield conn_url(blank_db)


@pytest.fixture
def unreachable_app():
    """An app whose database does not exist on a closed port (nothing listens there)."""
    port = pgcluster.free_port()
    application = make_app(url_of("127.0.0.1", port, "nowhere"), DB_CONNECT_TIMEOUT_S=1)
    yield application
    application.extensions[KEY].engine.dispose()
