"""Every route of the owner's pages, read from the app's URL map, so that a route added later is
checked without anyone remembering to: every form refuses a request without its CSRF token,
every owner-only route refuses staff, and neither refusal changes anything in the database.

The routes that any signed-in user (or anybody) may use, and the forms exempt from the CSRF
check, are listed here by hand and checked against what the app does; a new route must be
given a request below (how to reach it and what a valid form holds), or the suite fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import psycopg
import pytest
from flask.testing import FlaskClient
from psycopg import sql

from booking_service.runtime.extensions import KEY
from booking_service.use_cases.accounts import add_user
from booking_service.use_cases.api_keys import add_key
from booking_service.use_cases.webhooks import add_endpoint
from tests.support.app import make_app
from tests.support.helpers import booked, envelope, local_start, post, tool_call
from tests.support.web import page_token, sign_in_as


def _web_routes() -> list[tuple[str, str]]:
    """(endpoint, method) of every route of the `web` blueprint (HEAD and OPTIONS aside)."""
    app = make_app("postgresql+psycopg://nobody@127.0.0.1:1/nowhere")  # never connects
    try:
        return sorted(
            (rule.endpoint, method)
            for rule in app.url_map.iter_rules()
            if rule.endpoint.startswith("web.")
            for method in rule.methods - {"HEAD", "OPTIONS"}
        )
    finally:
        app.extensions[KEY].engine.dispose()


ROUTES = _web_routes()
FORMS = sorted({endpoint for endpoint, method in ROUTES if method == "POST"})

# Routes anybody may use, signed in or not. The calendar connection's landing page checks the
# OAuth `state` instead (it links only what an owner or operator started).
PUBLIC = {"web.login", "web.static", "web.calendar_connected"}
# Public routes whose request here is made up, so they answer it with their refusal page.
REFUSES_MADE_UP = {"web.calendar_connected": "The calendar was not connected"}
# Routes every signed-in user may use, staff included: the diary's work. Any other route is
# owner-only.
ANY_USER = {
    "web.home",
    "web.agenda",
    "web.appointment",
    "web.cancel",
    "web.move",
    "web.mark",
    "web.book",
    "web.book_submit",
    "web.logout",
    "web.waitlist",
}
OWNER_ONLY = sorted(
    (endpoint, method) for endpoint, method in ROUTES if endpoint not in PUBLIC | ANY_USER
)
# Forms accepted without a CSRF token: none (signing in and out included).
CSRF_EXEMPT: set[str] = set()


@dataclass
class World:
    """What the requests refer to: an organization with an owner, a staff member, another
    staff member to reset or remove, a future and a started appointment, a closed day, and a
    webhook endpoint with an event to replay."""

    org: object
    owner_email: str
    staff_email: str
    staff_password: str
    other_user: int
    resource: int
    upcoming: str
    started: str
    closed_day: str
    endpoint: int
    event_id: str
    api_key: int = 0


def _local(world: World, day: str, hour: int) -> str:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00").replace(tzinfo=world.org.zone).isoformat()


# endpoint -> the request (method is the route's): its path and, for a POST, a valid form
# without its CSRF token (each, accepted, changes something: the tests check that too).
Request = Callable[[World], tuple[str, dict[str, str]]]
REQUESTS: dict[str, Request] = {
    "web.home": lambda w: ("/app/", {}),
    "web.agenda": lambda w: ("/app/agenda", {}),
    "web.appointment": lambda w: (f"/app/appointments/{w.upcoming}", {}),
    "web.book": lambda w: ("/app/book", {}),
    "web.waitlist": lambda w: ("/app/waitlist", {}),
    "web.login": lambda w: ("/app/login", {"email": w.owner_email, "password": "a wrong guess"}),
    "web.static": lambda w: ("/app/static/app.css", {}),
    "web.settings": lambda w: ("/app/settings", {}),
    "web.logout": lambda w: ("/app/logout", {}),
    "web.cancel": lambda w: (f"/app/appointments/{w.upcoming}/cancel", {"reason": "forged"}),
    "web.move": lambda w: (
        f"/app/appointments/{w.upcoming}/move",
        {"start": _local(w, local_start()[:10], 14)},
    ),
    "web.mark": lambda w: (f"/app/appointments/{w.started}/mark", {"outcome": "completed"}),
    "web.book_submit": lambda w: (
        "/app/book",
        {
            "form_key": "f" * 32,
            "date": local_start()[:10],
            "start": _local(w, local_start()[:10], 11),
            "name": "Walk In",
            "email": "walk.in@example.com",
        },
    ),
    "web.settings_rules": lambda w: ("/app/settings/rules", {"slot_minutes": "15"}),
    "web.settings_reminders": lambda w: (
        "/app/settings/reminders",
        {"reminders": "24h", "quiet_hours": "21:00-08:00"},
    ),
    "web.settings_add_resource": lambda w: (
        "/app/settings/resources",
        {"name": "Dr New", "hours": "mon-fri 09:00-17:00"},
    ),
    "web.settings_hours": lambda w: (
        f"/app/settings/resources/{w.resource}/hours",
        {"day0": "08:00-12:00"},
    ),
    "web.settings_day": lambda w: (
        f"/app/settings/resources/{w.resource}/day",
        {"date": local_start(days=9)[:10], "hours": ""},
    ),
    "web.settings_clear_day": lambda w: (
        f"/app/settings/resources/{w.resource}/day/clear",
        {"date": w.closed_day},
    ),
    "web.settings_service": lambda w: (
        "/app/settings/services",
        {"name": "Whitening", "minutes": "60"},
    ),
    "web.settings_rotate_secret": lambda w: ("/app/settings/vapi/rotate", {"grace_minutes": "0"}),
    "web.settings_replay": lambda w: (
        "/app/settings/webhooks/replay",
        {"event_id": w.event_id, "endpoint_id": str(w.endpoint)},
    ),
    "web.settings_add_user": lambda w: (
        "/app/settings/users",
        {"email": "new.owner@bright.example", "role": "owner"},
    ),
    "web.settings_reset_user": lambda w: (f"/app/settings/users/{w.other_user}/reset", {}),
    "web.settings_remove_user": lambda w: (f"/app/settings/users/{w.other_user}/remove", {}),
    "web.settings_connect_calendar": lambda w: (
        "/app/settings/calendars/connect",
        {"provider": "google", "resource_id": str(w.resource)},
    ),
    "web.calendar_connected": lambda w: (
        "/app/calendars/oauth/google/done?state=made-up&code=made-up",
        {},
    ),
    "web.settings_add_api_key": lambda w: (
        "/app/settings/api-keys",
        {"name": "Website", "scope": "slots:read"},
    ),
    "web.settings_revoke_api_key": lambda w: (f"/app/settings/api-keys/{w.api_key}/revoke", {}),
}


@pytest.fixture
def app(database_url: str):
    """Google Calendar set up (a connection only needs its client id to start), so that the
    Connect form can be sent."""
    application = make_app(database_url, GOOGLE_CLIENT_ID="routes-test-client")
    yield application
    application.extensions[KEY].engine.dispose()


def snapshot(db: psycopg.Connection) -> dict[str, str]:
    """Every table's rows, hashed: any change anywhere shows."""
    tables = [
        name
        for (name,) in db.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
    ]
    query = "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} t"
    return {
        name: db.execute(sql.SQL(query).format(sql.Identifier(name))).fetchone()[0]
        for name in tables
    }


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return [name for name in after if before.get(name) != after[name]]


@pytest.fixture
def world(app, runtime, org, owner, db) -> World:
    staff_password = "reception desk pass"
    add_user(runtime.uow(), org.id, "desk@bright.example", "staff", staff_password)
    other = add_user(runtime.uow(), org.id, "temp@bright.example", "staff", "temporary pass 1")
    endpoint = add_endpoint(runtime.uow(), org.id, "http://127.0.0.1:9/hook", allow_private=True)
    client = app.test_client()
    upcoming = booked(post(client, org, envelope(tool_call(start=local_start(), name="A B"))))
    started = booked(
        post(
            client,
            org,
            envelope(tool_call(start=local_start(days=8), name="C D"), customer="+14155550124"),
        )
    )
    db.execute(
        "UPDATE appointments SET starts_at = now() - interval '1 hour', "
        "ends_at = now() - interval '30 minutes', blocked_until = now() - interval '30 minutes' "
        "WHERE reference = %s",
        (started["appointment"]["reference"],),
    )
    resource = db.execute("SELECT id FROM resources WHERE org_id = %s", (org.id,)).fetchone()[0]
    closed_day = local_start(days=10)[:10]
    db.execute(
        "INSERT INTO schedule_exceptions (org_id, resource_id, day) VALUES (%s, %s, %s)",
        (org.id, resource, closed_day),
    )
    event_id = db.execute("SELECT event_id FROM outbox_events ORDER BY id LIMIT 1").fetchone()[0]
    # Delivered already: a replay of a delivery still pending changes nothing (#24), and each
    # accepted request here must change something.
    db.execute("UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now()")
    return World(
        org=org,
        owner_email=owner.account.email,
        staff_email="desk@bright.example",
        staff_password=staff_password,
        other_user=other.account.id,
        resource=resource,
        upcoming=upcoming["appointment"]["reference"],
        started=started["appointment"]["reference"],
        closed_day=closed_day,
        endpoint=endpoint.endpoint.id,
        event_id=event_id,
        api_key=add_key(runtime.uow(), org.id, ["slots:read"]).info.id,
    )


def signed_in_as(app, email: str, password: str) -> FlaskClient:
    client = app.test_client()
    assert sign_in_as(client, email, password).status_code == 302
    return client


def send(client: FlaskClient, method: str, path: str, form: dict[str, str], token: str | None):
    if method == "GET":
        return client.get(path)
    data = {**form, "csrf_token": token} if token is not None else form
    return client.post(path, data=data)


def test_every_route_is_classified_and_has_a_request():
    """A route added later fails here until it is given a request and, unless owner-only,
    listed as public or for any signed-in user (a form: unless it must be CSRF-exempt)."""
    endpoints = {endpoint for endpoint, _ in ROUTES}
    assert set(REQUESTS) == endpoints, "give every route of the pages a request in REQUESTS"
    assert endpoints >= PUBLIC | ANY_USER, "a listed route no longer exists"
    assert set(FORMS) >= CSRF_EXEMPT
    assert ("web.settings_add_user", "POST") in OWNER_ONLY  # the list is not empty by mistake


@pytest.mark.parametrize("endpoint", FORMS)
def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(app, world, db, endpoint):
    """The owner (who may do everything) sends each form without a token and with a forged
    one: 400, nothing changed. The same form with its token is accepted and changes something,
    so it was the token that was refused."""
    client = signed_in_as(app, world.owner_email, "correct horse battery")
    path, form = REQUESTS[endpoint](world)
    before = snapshot(db)
    if endpoint in CSRF_EXEMPT:
        assert send(client, "POST", path, form, None).status_code != 400, "not exempt after all"
        return
    for token in (None, "x" * 40):
        response = send(client, "POST", path, form, token)
        assert response.status_code == 400, (endpoint, token, response.status_code)
        assert "The form could not be accepted" in response.get_data(as_text=True)
        assert changed(before, snapshot(db)) == [], (endpoint, token)

    accepted = send(client, "POST", path, form, page_token(client, "/app/agenda"))
    assert accepted.status_code not in (400, 403, 404), accepted.get_data(as_text=True)[:500]
    assert changed(before, snapshot(db)), f"{endpoint}: the valid form changed nothing"


@pytest.mark.parametrize(("endpoint", "method"), OWNER_ONLY)
def test_staff_get_403_from_every_owner_only_route_and_change_nothing(
    app, world, db, endpoint, method
):
    """Staff, signed in, with a valid CSRF token: 403 and nothing changed. The owner sending
    the same request is served (and a form changes something)."""
    staff = signed_in_as(app, world.staff_email, world.staff_password)
    path, form = REQUESTS[endpoint](world)
    before = snapshot(db)
    refused = send(staff, method, path, form, page_token(staff, "/app/agenda"))
    assert refused.status_code == 403, (endpoint, method, refused.status_code)
    assert "Owners only" in refused.get_data(as_text=True)
    assert "shown-once" not in refused.get_data(as_text=True)
    assert changed(before, snapshot(db)) == []

    owner_client = signed_in_as(app, world.owner_email, "correct horse battery")
    served = send(owner_client, method, path, form, page_token(owner_client, "/app/agenda"))
    assert served.status_code in (200, 302), served.get_data(as_text=True)[:500]
    if method == "POST":
        assert changed(before, snapshot(db)), f"{endpoint}: the owner's form changed nothing"


@pytest.mark.parametrize(
    ("endpoint", "method"),
    sorted((e, m) for e, m in ROUTES if e in ANY_USER | PUBLIC),
)
def test_the_routes_listed_for_any_user_serve_staff(app, world, db, endpoint, method):
    """The hand-made list matches the app: staff are served on every route it names."""
    staff = signed_in_as(app, world.staff_email, world.staff_password)
    path, form = REQUESTS[endpoint](world)
    response = send(staff, method, path, form, page_token(staff, "/app/agenda"))
    response.close()  # the stylesheet is sent from an open file
    if endpoint in REFUSES_MADE_UP:
        assert response.status_code == 400, (endpoint, response.status_code)
        assert REFUSES_MADE_UP[endpoint] in response.get_data(as_text=True)
        return
    assert response.status_code not in (400, 403, 404), (endpoint, response.status_code)
