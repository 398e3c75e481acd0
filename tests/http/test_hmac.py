"""VAPI's HMAC credential: valid, tampered, stale and replayed requests."""

from __future__ import annotations

import json
import time

import pytest

from booking_service.use_cases.orgs import set_hmac
from booking_service.use_cases.signatures import MAX_RUNS, expected_signature
from booking_service.worker.loop import Worker
from tests.support.helpers import booked, booking, count, envelope, tool_call


@pytest.fixture
def signed_org(org, runtime):
    org.hmac_key = set_hmac(runtime.uow(), org.id, enable=True)
    return org


def send(
    client, org, body: bytes, *, timestamp=None, signature=None, key=None, path=None, headers=None
):
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    signature = signature or expected_signature(key or org.hmac_key, timestamp, body)
    return client.post(
        path or f"/api/vapi/tools/{org.id}",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Signature": signature,
            "X-Timestamp": timestamp,
            **(headers or {}),
        },
    )


def body() -> bytes:
    return json.dumps(envelope(tool_call(**booking()))).encode()


def test_a_validly_signed_request_books(client, signed_org):
    booked(send(client, signed_org, body()))


def test_timestamps_in_milliseconds_are_accepted(client, signed_org):
    booked(send(client, signed_org, body(), timestamp=str(int(time.time() * 1000))))


def test_a_tampered_body_is_refused(client, signed_org, db):
    original = body()
    timestamp = str(int(time.time()))
    signature = expected_signature(signed_org.hmac_key, timestamp, original)
    tampered = original.replace(b"Maria Lopez", b"Mallory Lop")
    response = send(client, signed_org, tampered, timestamp=timestamp, signature=signature)

    assert response.status_code == 401
    assert count(db, "SELECT count(*) FROM appointments") == 0


def test_a_wrong_key_is_refused(client, signed_org):
    assert send(client, signed_org, body(), key="not-the-key").status_code == 401


def test_a_stale_timestamp_is_refused(client, signed_org):
    stale = str(int(time.time()) - 3600)
    assert send(client, signed_org, body(), timestamp=stale).status_code == 401


def test_a_repeated_request_gets_the_stored_answer_and_changes_nothing(client, signed_org, db):
    payload = body()
    timestamp = str(int(time.time()))
    signature = expected_signature(signed_org.hmac_key, timestamp, payload)
    first = send(client, signed_org, payload, timestamp=timestamp, signature=signature)
    repeat = send(client, signed_org, payload, timestamp=timestamp, signature=signature)

    booked(first)
    # nginx's re-send after a worker died, or a captured request replayed: the same answer,
    # word for word, and nothing run a second time.
    assert repeat.status_code == 200
    assert repeat.get_json() == first.get_json()
    assert count(db, "SELECT count(*) FROM appointments") == 1
    assert count(db, "SELECT count(*) FROM outbox_events") == 1


def _died_unanswered(db, org_id: int, signature: str, attempts: int) -> None:
    """What a worker killed mid-request leaves: the signature recorded, no answer stored."""
    db.execute(
        "INSERT INTO webhook_signatures (org_id, signature, attempts) VALUES (%s, %s, %s)",
        (org_id, signature, attempts),
    )


def test_a_repeat_of_a_request_that_died_unanswered_runs_again(client, signed_org, db):
    payload = body()
    timestamp = str(int(time.time()))
    signature = expected_signature(signed_org.hmac_key, timestamp, payload)
    _died_unanswered(db, signed_org.id, signature, attempts=1)

    booked(send(client, signed_org, payload, timestamp=timestamp, signature=signature))
    assert count(db, "SELECT count(*) FROM appointments") == 1


def test_a_signature_that_keeps_dying_unanswered_is_refused_after_a_few_runs(
    client, signed_org, db
):
    payload = body()
    timestamp = str(int(time.time()))
    signature = expected_signature(signed_org.hmac_key, timestamp, payload)
    _died_unanswered(db, signed_org.id, signature, attempts=MAX_RUNS)

    response = send(client, signed_org, payload, timestamp=timestamp, signature=signature)

    assert response.status_code == 401
    assert count(db, "SELECT count(*) FROM appointments") == 0


def test_unsigned_or_unknown_org_paths_are_refused(client, org, signed_org):
    unsigned = client.post(f"/api/vapi/tools/{signed_org.id}", data=body())
    unknown = send(client, signed_org, body(), path="/api/vapi/tools/999999")

    assert unsigned.status_code == 401
    assert unknown.status_code == 401


def test_an_org_without_hmac_cannot_be_reached_by_id(client, make_org):
    plain = make_org(name="Plain")
    response = client.post(
        f"/api/vapi/tools/{plain.id}",
        data=body(),
        headers={"X-Signature": "00", "X-Timestamp": str(int(time.time()))},
    )

    assert response.status_code == 401


def test_bearer_requests_must_be_signed_too_once_hmac_is_on(client, signed_org):
    bearer = {"Authorization": f"Bearer {signed_org.secret}"}
    unsigned = client.post("/api/vapi/tools", data=body(), headers=bearer)
    signed = send(client, signed_org, body(), path="/api/vapi/tools", headers=bearer)

    assert unsigned.status_code == 401
    booked(signed)


def test_cli_enables_and_disables_hmac(app, org):
    runner = app.test_cli_runner()
    enabled = json.loads(runner.invoke(args=["org", "hmac", str(org.id)]).stdout)
    disabled = json.loads(runner.invoke(args=["org", "hmac", str(org.id), "--disable"]).stdout)

    assert enabled["path"] == f"/api/vapi/tools/{org.id}" and len(enabled["hmac_secret"]) > 30
    assert disabled == {"id": org.id, "hmac": "disabled"}


def test_a_non_ascii_signature_is_refused_not_a_server_error(client, signed_org):
    response = send(client, signed_org, body(), signature="éabc")

    assert response.status_code == 401


def test_the_worker_forgets_kept_answers_once_no_repeat_can_pass(runtime, signed_org, db):
    db.execute(
        "INSERT INTO webhook_signatures (org_id, signature, answer, seen_at) VALUES "
        "(%s, 'old', '{}', now() - interval '11 minutes'), (%s, 'new', '{}', now())",
        (signed_org.id, signed_org.id),
    )

    Worker(runtime.uow, runtime.settings).forget_old_signatures()

    left = [r[0] for r in db.execute("SELECT signature FROM webhook_signatures")]
    assert left == ["new"]  # the window is 5 minutes: after 10 no repeat can be accepted


def test_the_hmac_key_is_stored_sealed_and_a_legacy_plain_one_still_verifies(
    app, client, signed_org, db
):
    stored = db.execute(
        "SELECT hmac_secret FROM organizations WHERE id = %s", (signed_org.id,)
    ).fetchone()[0]
    assert stored.startswith("fernet:") and signed_org.hmac_key not in stored
    booked(send(client, signed_org, body()))

    # A key stored before sealing existed still verifies, until reseal seals it.
    db.execute(
        "UPDATE organizations SET hmac_secret = %s WHERE id = %s",
        (signed_org.hmac_key, signed_org.id),
    )
    booked(send(client, signed_org, body()))
    resealed = app.test_cli_runner().invoke(args=["secrets", "reseal"])
    assert resealed.exit_code == 0 and '"hmac_keys": 1' in resealed.output
    assert (
        db.execute("SELECT hmac_secret FROM organizations WHERE id = %s", (signed_org.id,))
        .fetchone()[0]
        .startswith("fernet:")
    )
    booked(send(client, signed_org, body()))
