"""The organization cache (#17) on the other ways in (#30): the REST API, Retell and VAPI's HMAC
path read their organization afresh with the credential, in one statement, and then take the
catalogue and opening hours the worker keeps for exactly that version. So a booking costs no
catalogue or schedule read, and a change made between two requests applies on the second."""

from __future__ import annotations

import json

from booking_service.use_cases.orgs import set_hmac
from booking_service.use_cases.resources import add_resource, set_weekly_hours
from tests.http.test_api_v1 import auth, new_key, start_at
from tests.http.test_api_v1 import booking as rest_booking
from tests.http.test_hmac import send as send_signed
from tests.support.helpers import (
    booked,
    booking,
    count,
    envelope,
    local_start,
    statements_sent,
    tool_call,
)
from tests.support.platforms import enable_retell, post_retell, retell_body


def _reads_of_what_is_kept(seen: list[str]) -> list[str]:
    """Catalogue and opening-hours reads, and organization lookups of their own."""
    return [
        s
        for s in seen
        if ("FROM resources" in s and "FROM services" in s)
        or "FROM working_hours" in s
        or (s.startswith("SELECT organizations.id") and " JOIN " not in s)
    ]


def _rest_book(client, key: str, idem: str, **over):
    return client.post("/api/v1/bookings", json=rest_booking(**over), headers=auth(key, idem))


def test_a_rest_booking_reads_its_key_and_organization_once_and_nothing_kept(app, client, org):
    key = new_key(app, org.id)
    assert _rest_book(client, key, "first", start=start_at(hour=9)).status_code == 201
    seen = statements_sent(app)

    assert _rest_book(client, key, "second").status_code == 201

    lookups = [s for s in seen if "FROM api_keys" in s]
    assert len(lookups) == 1 and "organizations" in lookups[0], seen
    assert _reads_of_what_is_kept(seen) == [], seen


def test_a_rest_booking_sees_a_change_made_since_the_last_request(app, client, org, runtime, db):
    key = new_key(app, org.id)
    assert _rest_book(client, key, "warm", start=start_at(hour=9)).status_code == 201

    add_resource(runtime.uow(), org.id, "Dr Chen", ["mon-sun 00:00-23:59"])
    answer = _rest_book(client, key, "new-resource", resource="Dr Chen", phone="+14155550124")
    assert answer.status_code == 201, answer.json
    assert answer.json["resource"] == "Dr Chen"

    first = db.execute(
        "SELECT id, name FROM resources WHERE org_id = %s ORDER BY id LIMIT 1", (org.id,)
    ).fetchone()
    set_weekly_hours(runtime.uow(), org.id, first[0], {d: "13:00-17:00" for d in range(7)})
    closed = _rest_book(client, key, "closed-at-10", phone="+14155550125", resource=first[1])
    assert closed.status_code == 409, closed.json
    assert count(db, "SELECT count(*) FROM appointments") == 2


def _retell(org, call_id: str, phone: str, **args):
    arguments = {"name": "Maria Lopez", "start": local_start(days=7, hour=10), **args}
    return retell_body("bookAppointment", arguments, caller=phone, call_id=call_id)


def test_a_retell_booking_reads_its_organization_and_key_once_and_nothing_kept(
    app, client, runtime, org
):
    enable_retell(runtime, org)
    warm = _retell(org, "warm", "+14155550123", start=local_start(days=7, hour=9))
    assert post_retell(client, org, warm).get_json()["status"] == "booked"
    seen = statements_sent(app)

    answer = post_retell(client, org, _retell(org, "second", "+14155550124")).get_json()

    assert answer["status"] == "booked", answer
    lookups = [s for s in seen if "FROM voice_platform_settings" in s or "voice_platform" in s]
    assert len(lookups) == 1 and "organizations" in lookups[0], seen
    assert _reads_of_what_is_kept(seen) == [], seen


def test_a_retell_booking_sees_a_new_resource_and_a_changed_key(app, client, runtime, org, db):
    enable_retell(runtime, org)
    warm = _retell(org, "warm", "+14155550123", start=local_start(days=7, hour=9))
    assert post_retell(client, org, warm).get_json()["status"] == "booked"

    add_resource(runtime.uow(), org.id, "Dr Chen", ["mon-sun 00:00-23:59"])
    answer = post_retell(client, org, _retell(org, "chen", "+14155550124", resource="Dr Chen"))
    assert answer.get_json()["appointment"]["resource"] == "Dr Chen"

    enable_retell(runtime, org, key="key_rotated_0123456789abcdef")
    stale = post_retell(client, org, _retell(org, "old key", "+14155550125"))
    assert stale.status_code == 401
    assert count(db, "SELECT count(*) FROM appointments") == 2


def test_a_signed_vapi_booking_reads_nothing_kept(app, client, runtime, org):
    org.hmac_key = set_hmac(runtime.uow(), org.id, enable=True)

    def send(start: str):
        return send_signed(
            client, org, json.dumps(envelope(tool_call(**booking(start=start)))).encode()
        )

    booked(send(local_start(hour=9)))
    seen = statements_sent(app)

    booked(send(local_start(hour=11)))

    assert [s for s in seen if "FROM resources" in s or "FROM working_hours" in s] == [], seen
