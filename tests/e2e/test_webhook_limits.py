"""Webhook endpoints and replays within limits (#24): no credentials in URLs (and none shown
for endpoints that already have them), a cap on endpoints per organization, "send again"
that neither re-queues what is queued nor runs without limit."""

from __future__ import annotations

import json

import pytest

from booking_service.extensions import KEY
from booking_service.use_cases.accounts import add_user
from tests.conftest import make_app
from tests.e2e.test_web import sign_in_as

SECRET = "s3cr3t-pass"


@pytest.fixture
def app(database_url):
    application = make_app(database_url, WEBHOOK_ALLOW_PRIVATE_TARGETS=True, WEBHOOK_TIMEOUT_S=1)
    yield application
    application.extensions[KEY].engine.dispose()


def run(app, *args):
    return app.test_cli_runner().invoke(args=[str(a) for a in args])


def ok(app, *args):
    result = run(app, *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def refused(app, *args) -> str:
    result = run(app, *args)
    assert result.exit_code == 1, result.output
    return json.loads(result.stderr)["error"]


@pytest.fixture
def signed_in(app, org):
    add_user(app.extensions[KEY].uow(), org.id, "owner@bright.example", "owner", "horse battery!")
    client = app.test_client()
    assert sign_in_as(client, "owner@bright.example", "horse battery!").status_code == 302
    return client


def _stored_with_credentials(db, org_id: int) -> int:
    """An endpoint as an older release stored it: a password in its URL."""
    return db.execute(
        "INSERT INTO webhook_endpoints (org_id, url, secret) VALUES (%s, %s, %s) RETURNING id",
        (org_id, f"https://hookuser:{SECRET}@hooks.example.com/in", "whsec_" + "A" * 43 + "="),
    ).fetchone()[0]


# --- credentials in URLs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://user:pass@127.0.0.1:9/x",
        "http://user@127.0.0.1:9/x",
        "http://:pass@127.0.0.1:9/x",
        "https://a%40b:c@127.0.0.1:9/x",
    ],
)
def test_a_url_with_credentials_is_refused(app, org, db, url):
    assert "no credentials in the URL" in refused(app, "webhook", "add", org.id, "--url", url)
    assert db.execute("SELECT count(*) FROM webhook_endpoints").fetchone() == (0,)


def test_stored_credentials_are_never_printed_nor_shown(app, org, db, signed_in):
    endpoint_id = _stored_with_credentials(db, org.id)

    printed = [
        run(app, "webhook", "list", org.id).stdout,
        run(app, "webhook", "disable", endpoint_id).stdout,
        run(app, "webhook", "enable", endpoint_id).stdout,
        run(app, "webhook", "rotate-secret", endpoint_id).stdout,
    ]
    page = signed_in.get("/app/settings").get_data(as_text=True)

    for shown in (*printed, page):
        assert SECRET not in shown and "hookuser" not in shown
    assert json.loads(printed[0])[0]["url"] == "https://***@hooks.example.com/in"
    assert "https://***@hooks.example.com/in" in page
    # Still stored as it was, so deliveries to it go on (see without_credentials).
    assert SECRET in db.execute("SELECT url FROM webhook_endpoints").fetchone()[0]
