"""`calendar feed --revoke`: a leaked or unwanted ICS feed URL can be ended for good (#24),
not only replaced by a new secret URL."""

from __future__ import annotations

import json

import pytest

from tests.support.app import make_app

BASE = "https://book.example.com"


@pytest.fixture
def app(database_url):
    from booking_service.runtime.extensions import KEY

    application = make_app(database_url, PUBLIC_URL=BASE)
    yield application
    application.extensions[KEY].engine.dispose()


def cli(app, *args: str):
    return app.test_cli_runner().invoke(args=list(args))


def resource_id(app, org_id: int) -> int:
    listed = cli(app, "resource", "list", str(org_id))
    assert listed.exit_code == 0, listed.output
    return json.loads(listed.output)[0]["id"]


def test_a_revoked_feed_answers_404_and_a_new_one_can_be_made(app, org, db):
    main = resource_id(app, org.id)
    made = json.loads(cli(app, "calendar", "feed", str(main)).output)
    path = made["url"].removeprefix(BASE)
    assert app.test_client().get(path).status_code == 200

    revoked = cli(app, "calendar", "feed", str(main), "--revoke")
    assert revoked.exit_code == 0, revoked.output
    assert json.loads(revoked.output)["revoked"] is True
    assert app.test_client().get(path).status_code == 404
    assert db.execute("SELECT count(*) FROM calendar_feeds").fetchone()[0] == 0

    # Nothing is left to revoke: said so, not pretended.
    again = cli(app, "calendar", "feed", str(main), "--revoke")
    assert again.exit_code == 1 and "Traceback" not in again.output
    # A new feed needs no --rotate, and gets a URL of its own.
    fresh = json.loads(cli(app, "calendar", "feed", str(main)).output)
    assert fresh["rotated"] is False and fresh["url"] != made["url"]
    assert app.test_client().get(fresh["url"].removeprefix(BASE)).status_code == 200
    assert app.test_client().get(path).status_code == 404


def test_revoking_one_feed_leaves_the_organizations_other_feeds_and_other_organizations(
    app, org, make_org
):
    other = make_org(name="Other Clinic")
    main = resource_id(app, org.id)
    mine = json.loads(cli(app, "calendar", "feed", str(main)).output)["url"]
    whole = json.loads(cli(app, "calendar", "feed", "--org", str(org.id)).output)["url"]
    theirs = json.loads(cli(app, "calendar", "feed", "--org", str(other.id)).output)["url"]

    revoked = cli(app, "calendar", "feed", "--org", str(org.id), "--revoke")
    assert json.loads(revoked.output) == {"revoked": True, "resource_id": None, "org_id": org.id}
    client = app.test_client()
    assert client.get(whole.removeprefix(BASE)).status_code == 404
    assert client.get(mine.removeprefix(BASE)).status_code == 200
    assert client.get(theirs.removeprefix(BASE)).status_code == 200


def test_rotate_and_revoke_together_is_a_usage_error(app, org):
    both = cli(app, "calendar", "feed", str(resource_id(app, org.id)), "--rotate", "--revoke")
    assert both.exit_code == 2 and "cannot be used together" in both.output
