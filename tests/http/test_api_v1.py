"""The public REST API (/api/v1, #28) through the Flask test client and real PostgreSQL:
keys and scopes, booking once per Idempotency-Key (concurrently too), refusals with
alternatives, problem documents, and the same events as a phone booking."""

from __future__ import annotations

import json
import re
import threading
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import psycopg
import pytest

from tests.support.helpers import local_start

ZONE = ZoneInfo("America/New_York")
ALL = "slots:read,bookings:read,bookings:write"


def cli(app, *args) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=[str(a) for a in args])
    return result.exit_code, result.output


def new_key(app, org_id: int, scopes: str = ALL) -> str:
    code, out = cli(app, "apikey", "add", org_id, "--scope", scopes, "--name", "site")
    assert code == 0, out
    return json.loads(out)["key"]


def start_at(days: int = 7, hour: int = 10) -> str:
    """An aware ISO start (the business's offset) on a business day ahead."""
    return (
        datetime.fromisoformat(local_start(days=days, hour=hour)).replace(tzinfo=ZONE).isoformat()
    )


def auth(key: str, idem: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {key}"}
    if idem is not None:
        headers["Idempotency-Key"] = idem
    return headers


def booking(**over) -> dict:
    return {"start": start_at(), "name": "Ada Lovelace", "phone": "+14155550123", **over}


def count(database_url: str, sql: str) -> int:
    with psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql")) as conn:
        return conn.execute(sql).fetchone()[0]


@pytest.fixture
def key(app, org) -> str:
    return new_key(app, org.id)


def test_cli_prints_the_key_once_and_lists_and_revokes(app, org, client):
    code, out = cli(app, "apikey", "add", org.id, "--scope", "slots:read", "--name", "Widget")
    assert code == 0, out
    made = json.loads(out)
    assert made["scopes"] == ["slots:read"] and made["key"].startswith(f"bka_{made['id']}_")
    code, out = cli(app, "apikey", "list", org.id)
    listed = json.loads(out)
    assert [k["id"] for k in listed] == [made["id"]]
    assert made["key"] not in out and "hash" not in out
    assert client.get("/api/v1/slots", headers=auth(made["key"])).status_code == 200
    code, out = cli(app, "apikey", "revoke", made["id"])
    assert code == 0 and json.loads(out)["revoked_at"]
    answer = client.get("/api/v1/slots", headers=auth(made["key"]))
    assert answer.status_code == 401
    assert answer.mimetype == "application/problem+json"
    code, out = cli(app, "apikey", "add", org.id, "--scope", "slots:write")
    assert code == 1 and "--scope" in out
    code, out = cli(app, "apikey", "revoke", 999999)
    assert code == 1


@pytest.mark.parametrize("header", [None, "Bearer nope", "Bearer bka_1_" + "x" * 40, "Basic abc"])
def test_a_bad_key_is_401(client, key, header):
    headers = {"Authorization": header} if header else {}
    answer = client.get("/api/v1/slots", headers=headers)
    assert answer.status_code == 401
    assert answer.json["status"] == 401 and answer.json["title"]
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_widget_key_books_but_cannot_read_bookings(app, org, client):
    widget = new_key(app, org.id, "slots:read,bookings:write")
    assert client.get("/api/v1/bookings", headers=auth(widget)).status_code == 403
    made = client.post("/api/v1/bookings", json=booking(), headers=auth(widget, "w-1"))
    assert made.status_code == 201, made.json
    answer = client.get(f"/api/v1/bookings/{made.json['reference']}", headers=auth(widget))
    assert answer.status_code == 403 and "bookings:read" in answer.json["detail"]
    reader = new_key(app, org.id, "bookings:read")
    refused = client.post("/api/v1/bookings", json=booking(), headers=auth(reader, "r-1"))
    assert refused.status_code == 403


def test_another_organizations_key_sees_nothing_of_this_one(app, org, make_org, client, key):
    made = client.post("/api/v1/bookings", json=booking(), headers=auth(key, "a")).json
    other = new_key(app, make_org(name="Other").id)
    assert (
        client.get(f"/api/v1/bookings/{made['reference']}", headers=auth(other)).status_code == 404
    )
    cancel = client.post(
        f"/api/v1/bookings/{made['reference']}/cancel", json={}, headers=auth(other, "c")
    )
    assert cancel.status_code == 404


def test_slots_carry_the_business_offset(client, key):
    day = local_start(days=7)[:10]
    answer = client.get(f"/api/v1/slots?date={day}&durationMinutes=60", headers=auth(key))
    assert answer.status_code == 200
    slots = answer.json["slots"]
    assert slots and slots[0]["resource"] == "Main"
    first = datetime.fromisoformat(slots[0]["start"])
    assert first.utcoffset() == first.astimezone(ZONE).utcoffset()
    assert (datetime.fromisoformat(slots[0]["end"]) - first).total_seconds() == 3600
    assert slots[0]["start"].startswith(f"{day}T09:00:00")
    window = client.get(f"/api/v1/slots?from={day}&to={day}", headers=auth(key))
    assert window.json["slots"][0] == {**slots[0], "end": window.json["slots"][0]["end"]}


@pytest.mark.parametrize(
    "query, field",
    [
        ("date=2026-13-01", "date"),
        ("date=2026-12-01&from=2026-12-01", "date"),
        ("from=2026-12-10&to=2026-12-01", "to"),
        ("durationMinutes=2", "durationMinutes"),
        ("date=1900-01-01", "date"),
        ("resource=Nobody", "resource"),
    ],
)
def test_bad_slot_queries_are_422_per_field(client, key, query, field):
    answer = client.get(f"/api/v1/slots?{query}", headers=auth(key))
    assert answer.status_code == 422, answer.json
    assert answer.mimetype == "application/problem+json"
    assert field in answer.json["errors"]


def test_one_idempotency_key_books_once(client, key, database_url):
    body = booking()
    first = client.post("/api/v1/bookings", json=body, headers=auth(key, "k-1"))
    assert first.status_code == 201, first.json
    made = first.json
    assert made["status"] == "booked" and made["resource"] == "Main"
    assert made["start"] == body["start"]
    for _ in range(3):
        again = client.post("/api/v1/bookings", json=body, headers=auth(key, "k-1"))
        assert again.status_code == 201 and again.json == made
        assert again.headers["Idempotent-Replayed"] == "true"
    assert count(database_url, "SELECT count(*) FROM appointments") == 1
    assert count(database_url, "SELECT count(*) FROM outbox_events") == 1
    other = client.post(
        "/api/v1/bookings", json={**body, "name": "Someone Else"}, headers=auth(key, "k-1")
    )
    assert other.status_code == 422 and other.json["type"].endswith("idempotency-key-reused")
    missing = client.post("/api/v1/bookings", json=body, headers=auth(key))
    assert missing.status_code == 400 and "Idempotency-Key" in missing.json["title"]
    # Missing before anything else is read: a body that is wrong too still gets the 400.
    for bad in ({"name": ""}, "not json"):
        answer = client.post("/api/v1/bookings", json=bad, headers=auth(key))
        assert answer.status_code == 400 and answer.json["type"].endswith("key-missing")
    bad_key = client.post("/api/v1/bookings", json=body, headers=auth(key, "é"))
    assert bad_key.status_code == 400
    assert count(database_url, "SELECT count(*) FROM appointments") == 1


def test_a_taken_time_is_409_with_alternatives_and_kept_for_its_key(client, key, database_url):
    body = booking()
    assert client.post("/api/v1/bookings", json=body, headers=auth(key, "a")).status_code == 201
    clash = client.post(
        "/api/v1/bookings", json={**body, "phone": "+14155550999"}, headers=auth(key, "b")
    )
    assert clash.status_code == 409
    assert clash.mimetype == "application/problem+json"
    assert clash.json["type"].endswith("slot-unavailable")
    alternatives = clash.json["alternatives"]
    assert alternatives and all(a["start"] != body["start"] for a in alternatives)
    assert datetime.fromisoformat(alternatives[0]["start"]).tzinfo is not None
    repeat = client.post(
        "/api/v1/bookings", json={**body, "phone": "+14155550999"}, headers=auth(key, "b")
    )
    assert repeat.status_code == 409 and repeat.json == clash.json
    taken = client.post(
        "/api/v1/bookings",
        json={**body, "phone": "+14155550999", "start": alternatives[0]["start"]},
        headers=auth(key, "c"),
    )
    assert taken.status_code == 201
    assert count(database_url, "SELECT count(*) FROM appointments") == 2


@pytest.mark.parametrize(
    "body, field",
    [
        ({"start": None, "name": "Ada", "phone": "+14155550123"}, "start"),
        ({"start": "2026-12-08T10:00:00", "name": "Ada", "phone": "+14155550123"}, "start"),
        ({"start": "tomorrow", "name": "Ada", "phone": "+14155550123"}, "start"),
        ({"name": "Ada"}, "phone"),
        ({"name": "Ada", "phone": "not a phone"}, "phone"),
        ({"name": "Ada", "email": "nope"}, "email"),
        ({"name": "Ada\x00", "phone": "+14155550123"}, "name"),
        ({"name": "Ada", "phone": "+14155550123", "color": "red"}, "color"),
        ({"name": "Ada", "phone": "+14155550123", "resource": "Nobody"}, "resource"),
    ],
)
def test_bad_bookings_are_422_per_field(client, key, body, field, database_url):
    full = {k: v for k, v in {"start": start_at(), **body}.items() if v is not None}
    answer = client.post("/api/v1/bookings", json=full, headers=auth(key, uuid.uuid4().hex))
    assert answer.status_code == 422, answer.json
    assert answer.mimetype == "application/problem+json"
    assert field in answer.json["errors"], answer.json
    assert count(database_url, "SELECT count(*) FROM appointments") == 0


def test_a_body_that_is_not_json_is_400(client, key):
    answer = client.post(
        "/api/v1/bookings",
        data="{not json",
        headers=auth(key, "x"),
        content_type="application/json",
    )
    assert answer.status_code == 400 and answer.json["status"] == 400


def test_list_read_cancel_and_reschedule(client, key, database_url):
    made = client.post("/api/v1/bookings", json=booking(), headers=auth(key, "1")).json
    ref = made["reference"]
    assert client.get(f"/api/v1/bookings/{ref}", headers=auth(key)).json == made
    listed = client.get(f"/api/v1/bookings?date={made['start'][:10]}", headers=auth(key)).json
    assert listed["bookings"] == [made]
    later = start_at(hour=14)
    moved = client.post(
        f"/api/v1/bookings/{ref}/reschedule", json={"start": later}, headers=auth(key, "2")
    )
    assert moved.status_code == 200, moved.json
    assert moved.json["start"] == later and moved.json["reference"] == ref
    cancelled = client.post(
        f"/api/v1/bookings/{ref}/cancel", json={"reason": "ill"}, headers=auth(key, "3")
    )
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    again = client.post(f"/api/v1/bookings/{ref}/cancel", headers=auth(key, "4"))
    assert again.status_code == 200 and again.json["status"] == "cancelled"
    refused = client.post(
        f"/api/v1/bookings/{ref}/reschedule", json={"start": later}, headers=auth(key, "5")
    )
    assert refused.status_code == 409 and refused.json["type"].endswith("/cancelled")
    assert client.get("/api/v1/bookings/NOPE99", headers=auth(key)).status_code == 404
    # The same events as a phone booking: booked, rescheduled, cancelled, each with its
    # webhook deliveries, calendar pushes and messages planned by the outbox.
    types = count(
        database_url,
        "SELECT string_agg(type, ',' ORDER BY id) FROM outbox_events",
    )
    assert types == "appointment.booked,appointment.rescheduled,appointment.cancelled"


def test_a_move_to_a_taken_time_keeps_the_booking(client, key):
    first = client.post("/api/v1/bookings", json=booking(), headers=auth(key, "1")).json
    second = client.post(
        "/api/v1/bookings",
        json=booking(start=start_at(hour=11), phone="+14155550999"),
        headers=auth(key, "2"),
    ).json
    refused = client.post(
        f"/api/v1/bookings/{second['reference']}/reschedule",
        json={"start": first["start"]},
        headers=auth(key, "3"),
    )
    assert refused.status_code == 409 and refused.json["alternatives"]
    kept = client.get(f"/api/v1/bookings/{second['reference']}", headers=auth(key)).json
    assert kept["start"] == second["start"] and kept["status"] == "booked"


def _concurrently(app, n: int, send) -> list:
    """Run `send(client, i)` from n threads at once, each with its own client."""
    barrier = threading.Barrier(n)
    answers: list = [None] * n

    def run(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        answers[i] = send(client, i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def test_concurrent_repeats_of_one_key_book_once(app, key, database_url):
    body = booking()
    answers = _concurrently(
        app,
        8,
        lambda client, _i: client.post("/api/v1/bookings", json=body, headers=auth(key, "same")),
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json["reference"] for a in answers}) == 1
    assert count(database_url, "SELECT count(*) FROM appointments") == 1
    assert count(database_url, "SELECT count(*) FROM api_requests") == 1


def test_concurrent_bookings_of_one_time_book_it_once(app, key, database_url):
    body = booking()
    answers = _concurrently(
        app,
        6,
        lambda client, i: client.post(
            "/api/v1/bookings",
            json={**body, "phone": f"+1415555{i:04d}"},
            headers=auth(key, f"key-{i}"),
        ),
    )
    assert sorted(a.status_code for a in answers) == [201] + [409] * 5
    assert count(database_url, "SELECT count(*) FROM appointments") == 1


def test_the_openapi_document_is_valid_and_public(client):
    from openapi_spec_validator import validate

    answer = client.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    document = answer.json
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert {"/api/v1/slots", "/api/v1/bookings", "/api/v1/bookings/{reference}/reschedule"} <= set(
        document["paths"]
    )
    body = document["components"]["schemas"]["BookingIn"]
    assert body["properties"]["start"]["format"] == "date-time"


def test_an_unknown_api_path_is_a_problem_document(client):
    answer = client.get("/api/v1/nothing-here")
    assert answer.status_code == 404 and answer.mimetype == "application/problem+json"


def test_answers_are_kept_a_day_and_then_forgotten(client, key, runtime, database_url):
    from datetime import UTC, timedelta

    from booking_service.use_cases.api_requests import forget_api_requests

    body = booking()
    assert client.post("/api/v1/bookings", json=body, headers=auth(key, "kept")).status_code == 201
    now = datetime.now(UTC)
    assert forget_api_requests(runtime.uow(), now + timedelta(hours=25)) == 0
    again = client.post("/api/v1/bookings", json=body, headers=auth(key, "kept"))
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert forget_api_requests(runtime.uow(), now + timedelta(hours=49)) == 1
    assert count(database_url, "SELECT count(*) FROM api_requests") == 0


@pytest.mark.parametrize(
    "start", ["9999-12-31T23:59:00-23:59", "0001-01-01T00:00:00+23:59", "2200-01-01T10:00:00Z"]
)
def test_times_out_of_reach_are_422_not_500(client, key, start):
    answer = client.post(
        "/api/v1/bookings", json=booking(start=start), headers=auth(key, uuid.uuid4().hex)
    )
    assert answer.status_code == 422 and "start" in answer.json["errors"]


def test_owners_make_and_revoke_keys_on_the_settings_page(app, org, make_org, client, runtime):
    from booking_service.use_cases.accounts import add_user
    from tests.support.web import page_token, sign_in_as

    add_user(runtime.uow(), org.id, "owner@bright.example", "owner", "a long enough password")
    sign_in_as(client, "owner@bright.example", "a long enough password")
    token = page_token(client, "/app/settings")
    refused = client.post("/app/settings/api-keys", data={"csrf_token": token, "name": "x"})
    assert refused.status_code == 400 and "Scopes" in refused.get_data(as_text=True)
    made = client.post(
        "/app/settings/api-keys",
        data={"csrf_token": token, "name": "Website", "scope": ["slots:read", "bookings:write"]},
    )
    html = made.get_data(as_text=True)
    assert made.status_code == 200
    key = re.search(r'<code id="shown-once">([^<]+)</code>', html).group(1)
    api = app.test_client()
    assert api.get("/api/v1/slots", headers=auth(key)).status_code == 200
    assert api.get("/api/v1/bookings", headers=auth(key)).status_code == 403
    page = client.get("/app/settings").get_data(as_text=True)
    assert key not in page and "Website" in page
    key_id = int(key.split("_")[1])
    revoked = client.post(
        f"/app/settings/api-keys/{key_id}/revoke",
        data={"csrf_token": page_token(client, "/app/settings")},
    )
    assert revoked.status_code == 302
    assert api.get("/api/v1/slots", headers=auth(key)).status_code == 401
    # Another organization's key is not this owner's to revoke.
    foreign = new_key(app, make_org(name="Other").id)
    other_id = int(foreign.split("_")[1])
    token = page_token(client, "/app/settings")
    answer = client.post(f"/app/settings/api-keys/{other_id}/revoke", data={"csrf_token": token})
    assert answer.status_code == 404
    assert api.get("/api/v1/slots", headers=auth(foreign)).status_code == 200


def test_the_committed_openapi_document_is_the_served_one(app, client):
    """docs/openapi.json shows API changes in review; regenerate it with
    `flask --app wsgi apikey openapi > docs/openapi.json`."""
    from pathlib import Path

    committed = json.loads((Path(__file__).parents[2] / "docs" / "openapi.json").read_text())
    assert client.get("/api/v1/openapi.json").json == committed
    code, out = cli(app, "apikey", "openapi")
    assert code == 0 and json.loads(out) == committed


def test_an_unreachable_database_is_a_503_problem(unreachable_app):
    answer = unreachable_app.test_client().get("/api/v1/slots", headers=auth("bka_1_" + "x" * 43))
    assert answer.status_code == 503 and answer.mimetype == "application/problem+json"
    assert answer.headers["Retry-After"]


def test_a_key_held_by_a_running_request_is_a_503_after_the_lock_waits(org, database_url):
    """Another request holds the Idempotency-Key (its claim not yet committed): this one
    waits lock_timeout at most three times, then answers 503 with nothing changed."""
    from tests.support.app import make_app

    app = make_app(database_url, DB_LOCK_TIMEOUT_MS=150)
    key = new_key(app, org.id)
    key_id = int(key.split("_")[1])
    plain = database_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(plain) as holder:
        holder.execute(
            "INSERT INTO api_requests (org_id, api_key_id, idempotency_key, fingerprint) "
            "VALUES (%s, %s, 'held', 'x')",
            (org.id, key_id),
        )
        try:
            answer = app.test_client().post(
                "/api/v1/bookings", json=booking(), headers=auth(key, "held")
            )
        finally:
            holder.rollback()
            app.extensions["booking_service"].engine.dispose()

    assert answer.status_code == 503, answer.json
    assert answer.headers["Retry-After"]
    assert count(database_url, "SELECT count(*) FROM appointments") == 0
