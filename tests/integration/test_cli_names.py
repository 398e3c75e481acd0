"""One name per thing in the CLI (#25 item 5): `appointments` is the group for the day's list
and for marking an outcome; the old `appointment mark` still works for one release, hidden."""

from __future__ import annotations

import json

from tests.support.helpers import booked, booking, envelope, local_start, post, tool_call


def test_appointments_mark_and_the_old_spelling_do_the_same(app, org, db):
    references = []
    for hour in (9, 10):
        body = envelope(tool_call(**booking(start=local_start(days=3, hour=hour))))
        references.append(booked(post(app.test_client(), org, body))["appointment"]["reference"])
    for hours_ago, reference in ((3, references[0]), (2, references[1])):
        db.execute(
            "UPDATE appointments SET starts_at = now() - make_interval(hours => %s), "
            "ends_at = now() - make_interval(hours => %s) + interval '30 minutes', "
            "blocked_until = now() - make_interval(hours => %s) + interval '30 minutes' "
            "WHERE reference = %s",
            (hours_ago, hours_ago, hours_ago, reference),
        )
    runner = app.test_cli_runner()
    org_id = str(org.id)
    mark = ["mark", "--org", org_id, "--completed"]
    new = runner.invoke(args=["appointments", *mark, references[0]])
    old = runner.invoke(args=["appointment", *mark, references[1]])
    assert new.exit_code == 0 and old.exit_code == 0, (new.output, old.output)
    assert json.loads(new.output)["status"] == json.loads(old.output)["status"] == "completed"
    listed = runner.invoke(args=["appointments", "list", org_id, "--json"])
    assert listed.exit_code == 0


def test_the_old_group_is_hidden_from_help(app):
    shown = app.test_cli_runner().invoke(args=["--help"]).output
    assert "appointments" in shown
    assert "  appointment " not in shown
