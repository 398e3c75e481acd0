"""Shared fixtures: a throwaway PostgreSQL cluster, migrated template databases, apps, clients.

`make test` runs pytest inside a throwaway cluster and passes it as BOOKING_TEST_PG; a plain
`pytest` starts its own. Either way the tests never touch a developer's database or a server
that happens to run on the machine. Each test gets its own database, cloned from a template
that `alembic upgrade head` built (the same path production takes).

The folders say what a test starts:
  unit/         nothing: plain functions and objects
  integration/  PostgreSQL (and fakes of outside systems on loopback: Radicale, Twilio, SMTP,
                webhook receivers); calendars/ and notifications/ share a world in their conftest
  http/         the app in-process through the Flask test client (and PostgreSQL)
  stack/        processes of the service: nginx, gunicorn, PgBouncer, `flask worker`, a
                PostgreSQL of its own to restart; marked `stack`
  browser/      headless Chromium against a served app; marked `browser`
  support/      no tests: helpers, the app factory the tests use, the fakes and the stack drivers
`make test-fast` runs all but `stack` and `browser`; `make test` runs everything.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic import command
from flask.testing import FlaskClient
from pytest_postgresql import factories
from pytest_postgresql.janitor import DatabaseJanitor

from booking_service.devtools import pgcluster
from booking_service.persistence.schema_check import alembic_config
from booking_service.runtime.extensions import KEY
from booking_service.use_cases.orgs import create_org
from tests.support.app import Org, make_app
from tests.support.helpers import local_start
from tests.support.markers import COLLECTED, FOLDER_MARKERS

TESTS = Path(__file__).resolve().parent
# Copied from the shared VAPI fixtures so that a fresh clone is self-contained.
FIXTURES = TESTS / "fixtures" / "vapi"

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


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by the markers added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test in tests/stack and tests/browser with its folder's marker."""
    collected = []
    for item in items:
        parts = item.path.resolve().relative_to(TESTS).parts
        folder = parts[0] if len(parts) > 1 else ""
        if folder in FOLDER_MARKERS:
            item.add_marker(FOLDER_MARKERS[folder])
        names = frozenset(mark.name for mark in item.iter_markers())
        collected.append((item.nodeid, folder, names))
    config.stash[COLLECTED] = collected


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
    from tests.support import stack

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


@pytest.fixture
def rt(app):
    """`runtime` under the short name the notification, calendar and SMS tests use: the
    runtime of whichever `app` the test's module or folder provides."""
    return app.extensions[KEY]


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
