"""Odd and hostile input at the webhook's edge (issue #10's items 5, 8, 9 and 11)."""

from __future__ import annotations

import logging
import re

from tests.helpers import booking, count, envelope, post, tool_call


def test_more_than_fifty_tool_calls_are_refused_whole(client, org, db):
    body = envelope(*[tool_call(**booking()) for _ in range(51)])
    response = post(client, org, body)

    assert response.status_code == 400
    assert "50" in response.get_json()["error"]["message"]
    assert count(db, "SELECT count(*) FROM tool_calls") == 0


def test_fifty_tool_calls_are_each_answered(client, org):
    body = envelope(*[tool_call("checkAvailability", date="2020-01-01") for _ in range(50)])
    results = post(client, org, body).get_json()["results"]

    assert len(results) == 50
    assert all("error" in r or "result" in r for r in results)


def test_tool_call_id_and_name_are_always_strings(client, org):
    calls = [
        {"id": 12345, "type": "function", "function": {"name": "bookAppointment", "arguments": {}}},
        {"type": "function", "function": {"arguments": {}}},
    ]
    results = post(client, org, envelope(*calls)).get_json()["results"]

    assert [(r["toolCallId"], r["name"]) for r in results] == [
        ("12345", "bookAppointment"),
        ("", ""),
    ]


def test_an_organization_id_past_bigint_is_401_without_touching_the_database(client, caplog):
    with caplog.at_level(logging.INFO):
        response = client.post(
            "/api/vapi/tools/9223372036854775808",
            json=envelope(tool_call(**booking())),
        )

    assert response.status_code == 401
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_only_plain_request_ids_are_kept(client, org, caplog):
    with caplog.at_level(logging.INFO):
        post(client, org, envelope(tool_call(**booking())), {"X-Request-Id": "ok-id_1.2"})
        post(
            client,
            org,
            envelope(tool_call(**booking(start=None))),
            {"X-Request-Id": "x up=200 rt=0"},
        )
        post(client, org, envelope(tool_call(**booking(start=None))), {"X-Request-Id": "y" * 7000})

    ids = {getattr(r, "request_id", None) for r in caplog.records} - {None, "-", ""}
    assert "ok-id_1.2" in ids
    assert not any(" " in i or len(i) > 64 for i in ids)
    assert sum(bool(re.fullmatch(r"[0-9a-f]{16}", i)) for i in ids) >= 2
