"""Health endpoint and the flask CLI, against a real database."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from tests.support.helpers import booked, booking, envelope, post, tool_call


def test_health_is_ok_on_a_migrated_database(client):
    response = client.get("/api/health")

    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ok",
        "database": "ok",
        "schema": "ok",
        "outbox": "ok",
        "calendars": "ok",
        "messages": "ok",
    }


def test_health_is_503_when_the_database_is_unreachable(unreachable_app):
    response = unreachable_app.test_client().get("/api/health")

    assert response.status_code == 503
    assert response.get_json() == {
        "status": "unavailable",
        "database": "unavailable",
        "schema": "unknown",
        "outbox": "unknown",
        "calendars": "unknown",
        "messages": "unknown",
    }


def test_tool_calls_get_a_spoken_error_when_the_database_is_unreachable(unreachable_app):
    response = unreachable_app.test_client().post(
        "/api/vapi/tools",
        json=envelope(tool_call(**booking())),
        headers={"Authorization": "Bearer bks_1_abcdefghijklmnopqrstuvwxyz"},
    )

    assert response.status_code == 200
    entry = response.get_json()["results"][0]
    assert "not reachable" in entry["error"]


def invoke(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def test_org_create_prints_id_and_secret_that_works(app, client):
    result = invoke(
        app,
        "org",
        "create",
        "--name",
        "Smile",
        "--timezone",
        "Europe/London",
        "--phone-region",
        "gb",
        "--appointment-minutes",
        "45",
    )

    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["phone_region"] == "GB"
    assert created["appointment_minutes"] == 45
    response = client.post(
        "/api/vapi/tools",
        json=envelope(tool_call(**booking(phone="020 7946 0958")), customer=None),
        headers={"Authorization": f"Bearer {created['secret']}"},
    )
    result = booked(response)
    assert "until" in result["message"]


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--timezone", "Mars/Olympus", "unknown time zone"),
        ("--timezone", "EST", "unknown time zone"),
        ("--phone-region", "XX", "unknown phone region"),
        ("--appointment-minutes", "0", "between 5 and 480"),
    ],
)
def test_org_create_rejects_bad_settings_clearly(app, option, value, words):
    args = {"--name": "Smile", "--timezone": "Europe/London", option: value}
    result = invoke(app, "org", "create", *[x for kv in args.items() for x in kv])

    assert result.exit_code == 1
    assert words in result.stderr


def test_org_rotate_secret_prints_a_working_secret(app, client, org):
    result = invoke(app, "org", "rotate-secret", str(org.id))

    assert result.exit_code == 0
    secret = json.loads(result.stdout)["secret"]
    assert secret != org.secret
    org.secret = secret
    booked(post(client, org, envelope(tool_call(**booking()))))


def test_org_rotate_secret_of_unknown_org_fails(app):
    result = invoke(app, "org", "rotate-secret", "424242")

    assert result.exit_code == 1
    assert "no organization" in result.stderr


def test_schema_check_passes_at_head(app):
    result = invoke(app, "schema", "check")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "ok"


def test_demo_setup_creates_one_org_and_prints_curls_that_work(app, client, db):
    first = invoke(app, "demo", "setup")
    second = invoke(app, "demo", "setup")

    assert first.exit_code == 0 and second.exit_code == 0
    assert "rotate-secret" in second.stderr
    assert db.execute("SELECT count(*) FROM organizations").fetchone() == (1,)
    curls = [line.strip() for line in first.stderr.splitlines() if line.strip().startswith("curl")]
    assert len(curls) == 2
    for curl, status in zip(curls, ("available", "booked"), strict=True):
        words = shlex.split(curl)
        assert words[2] == "http://127.0.0.1:8000/api/vapi/tools"
        headers = dict(h.split(": ", 1) for h in (words[4], words[6]))
        body = words[words.index("-d") + 1]
        response = client.post("/api/vapi/tools", data=body, headers=headers)
        result = json.loads(response.get_json()["results"][0]["result"])
        assert result["status"] == status
    # "cleaning" is one of the demo's services, so it is the booking's service, not a note.
    assert result["appointment"]["service"] == "cleaning"
    assert db.execute("SELECT service, notes FROM appointments").fetchall() == [("cleaning", None)]
    # Each platform's set-up prints as JSON to paste, with this organization's URLs.
    org_id = db.execute("SELECT id FROM organizations").fetchone()[0]
    pasted = {}
    for title in ("VAPI tools", "Retell custom functions", "ElevenLabs webhook tools"):
        block = first.stderr.split(f"--- {title} ---\n", 1)[1].split(f"--- end of {title}")[0]
        pasted[title] = json.loads(block[block.index("[") :])
    urls = {
        pasted["VAPI tools"][0]["server"]["url"],
        pasted["Retell custom functions"][0]["url"],
        pasted["ElevenLabs webhook tools"][0]["api_schema"]["url"],
    }
    assert urls == {
        "http://127.0.0.1:8000/api/vapi/tools",
        f"http://127.0.0.1:8000/api/retell/{org_id}/tools",
        "http://127.0.0.1:8000/api/elevenlabs/tools/checkAvailability",
    }
    # And the printed password signs in to the web page, once made.
    line = next(x for x in first.stderr.splitlines() if "/app/" in x)
    password = re.search(r"with the password (\S+),", line).group(1)
    assert db.execute("SELECT count(*) FROM users WHERE role = 'owner'").fetchone() == (1,)
    login = client.get("/app/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
    signed = client.post(
        "/app/login",
        data={"email": "owner@demo.example", "password": password, "csrf_token": token},
    )
    assert signed.status_code == 302 and signed.headers["Location"] == "/app/agenda"
