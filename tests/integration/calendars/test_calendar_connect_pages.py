"""Settings → Calendars through the Flask test client: the Connect buttons (only for providers
that are set up), a connection bound to the owner who started it, the callback's plain error
pages, and "Reconnect Google Calendar" once the grant is revoked."""

from __future__ import annotations

from datetime import timedelta

import pytest

from booking_service.runtime.extensions import KEY
from booking_service.use_cases.accounts import add_user
from tests.support.app import make_app
from tests.support.fake_google import FakeGoogle, fake_google
from tests.support.fake_microsoft import FakeMicrosoft, fake_microsoft
from tests.support.oauth_calendars import come_back, consent, oauth_settings
from tests.support.web import page_token, sign_in_as

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def google():
    with fake_google() as server:
        yield server


@pytest.fixture(scope="module")
def microsoft():
    with fake_microsoft() as server:
        yield server


@pytest.fixture
def app(database_url, google: FakeGoogle, microsoft: FakeMicrosoft):
    application = make_app(database_url, **oauth_settings(google, microsoft))
    yield application
    application.extensions[KEY].engine.dispose()


def signed_in(app, rt, org, email: str):
    add_user(rt.uow(), org.id, email, "owner", PASSWORD)
    client = app.test_client()
    assert sign_in_as(client, email, PASSWORD).status_code == 302
    return client


def press_connect(client, provider: str, resource_id: int):
    token = page_token(client, "/app/settings")
    return client.post(
        "/app/settings/calendars/connect",
        data={"csrf_token": token, "provider": provider, "resource_id": str(resource_id)},
    )


def test_the_owner_connects_google_from_settings_and_only_that_owner_can_finish(
    app, rt, org, main_id, google, sync, clock
):
    owner = signed_in(app, rt, org, "owner@bright.example")
    page = owner.get("/app/settings")
    html = page.get_data(as_text=True)
    assert "Connect Google Calendar" in html and "Connect Microsoft 365" in html
    # The form may lead to the consent page (form-action covers the redirect after a POST).
    assert google.base in page.headers["Content-Security-Policy"]

    answer = press_connect(owner, "google", main_id)
    assert answer.status_code == 302
    assert answer.headers["location"].startswith(google.base + google.auth_path)
    callback = consent(answer.headers["location"])

    # Someone else (not signed in, or another user) cannot complete the owner's connection.
    stranger = come_back(app.test_client(), callback)
    assert stranger.status_code == 400
    assert "started by another user" in stranger.get_data(as_text=True)

    callback = consent(press_connect(owner, "google", main_id).headers["location"])
    done = come_back(owner, callback)
    assert done.status_code == 302 and done.headers["location"].endswith("/app/settings#calendars")
    settled = owner.get("/app/settings").get_data(as_text=True)
    assert "Google Calendar is connected" in settled or "is connected" in settled
    assert "owner@example.com" in settled

    # The grant is revoked: the page says so and offers the button.
    assert sync.poll_one()
    google.revoke_all()
    clock.advance(timedelta(minutes=2))
    assert sync.poll_one()
    settled = owner.get("/app/settings").get_data(as_text=True)
    assert "Reconnect Google Calendar" in settled
    assert "no longer accepts our access" in settled


def test_a_provider_without_a_client_id_is_not_offered(database_url, rt, org):
    bare = make_app(database_url, SECRET_KEY=rt.settings.secret_key)
    try:
        add_user(rt.uow(), org.id, "solo@bright.example", "owner", PASSWORD)
        client = bare.test_client()
        assert sign_in_as(client, "solo@bright.example", PASSWORD).status_code == 302
        html = client.get("/app/settings").get_data(as_text=True)
        assert "Connect Google Calendar" not in html and "Connect Microsoft 365" not in html
        token = page_token(client, "/app/settings")
        refused = client.post(
            "/app/settings/calendars/connect",
            data={"csrf_token": token, "provider": "google", "resource_id": "1"},
        )
        assert refused.status_code in (400, 404)
    finally:
        bare.extensions[KEY].engine.dispose()


def test_a_callback_with_a_made_up_state_links_nothing(app, db):
    answer = come_back(app.test_client(), "/oauth/google/callback?state=forged&code=abc")
    assert answer.status_code == 400
    assert "expired or was already used" in answer.get_data(as_text=True)
    assert app.test_client().get("/oauth/yahoo/callback?state=x").status_code == 404
    assert db.execute("SELECT count(*) FROM calendar_links").fetchone()[0] == 0
