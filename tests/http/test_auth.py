"""Authentication: the organization comes only from the credential."""

from __future__ import annotations

import pytest

from booking_service.use_cases.orgs import rotate_secret
from tests.support.helpers import booked, booking, count, envelope, error_of, post, tool_call


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer "},
        {"X-Vapi-Secret": ""},
        {"Authorization": "Bearer bks_1_wrongwrongwrongwrongwrongwrong"},
        {"Authorization": "Bearer not-even-our-format"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-Vapi-Secret": "bks_999999_wrongwrongwrongwrongwrong"},
    ],
)
def test_missing_empty_or_wrong_credentials_are_401(client, org, db, headers):
    response = client.post(
        "/api/vapi/tools", json=envelope(tool_call(**booking())), headers=headers
    )

    assert response.status_code == 401
    assert response.get_json()["error"]["status"] == 401
    assert count(db, "SELECT count(*) FROM appointments") == 0


def test_x_vapi_secret_header_is_accepted(client, org):
    response = client.post(
        "/api/vapi/tools",
        json=envelope(tool_call(**booking())),
        headers={"X-Vapi-Secret": org.secret},
    )
    booked(response)


def test_a_secret_with_another_orgs_id_is_refused(client, make_org):
    a = make_org(name="A")
    b = make_org(name="B")
    forged = a.secret.replace(f"bks_{a.id}_", f"bks_{b.id}_")
    response = client.post(
        "/api/vapi/tools",
        json=envelope(tool_call(**booking())),
        headers={"Authorization": f"Bearer {forged}"},
    )

    assert response.status_code == 401


def test_one_organization_never_touches_anothers_data(client, make_org, db):
    a = make_org(name="Clinic A")
    b = make_org(name="Clinic B")
    body = envelope(tool_call(call_id="call_shared", **booking(email="maria@example.com")))
    body["message"]["call"]["orgId"] = str(b.id)  # payload claims are ignored

    booked(post(client, a, body))
    booked(post(client, b, body))  # same toolCallId in another org is another call

    rows = db.execute(
        "SELECT org_id, count(*) FROM contacts GROUP BY org_id ORDER BY org_id"
    ).fetchall()
    assert rows == [(a.id, 1), (b.id, 1)]
    assert db.execute(
        "SELECT count(*) FROM appointments a JOIN contacts c ON c.id = a.contact_id "
        "WHERE a.org_id <> c.org_id"
    ).fetchone() == (0,)
    assert count(db, "SELECT count(*) FROM tool_calls") == 2


def test_rotated_secret_replaces_the_old_one(client, org, runtime):
    new_secret = rotate_secret(runtime.uow(), org.id)
    old = client.post(
        "/api/vapi/tools",
        json=envelope(tool_call(**booking())),
        headers={"Authorization": f"Bearer {org.secret}"},
    )
    new = client.post(
        "/api/vapi/tools",
        json=envelope(tool_call(**booking())),
        headers={"Authorization": f"Bearer {new_secret}"},
    )

    assert old.status_code == 401
    booked(new)


def test_secret_is_stored_only_as_a_hash(org, db):
    stored = db.execute("SELECT secret_hash FROM organizations").fetchone()[0]

    assert org.secret not in stored
    assert len(stored) == 64


def test_unauthenticated_body_is_not_parsed(client, db):
    response = client.post("/api/vapi/tools", data=b"not json at all")

    assert response.status_code == 401


def test_error_answers_are_still_http_200(client, org):
    response = post(client, org, envelope(tool_call(**booking(start="yesterday"))))

    assert response.status_code == 200
    error_of(response)
