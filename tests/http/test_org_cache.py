"""The organization cache (#17): an organization and its catalogue are kept by each worker
between requests, and every change made anywhere takes effect on the next request.

Each test first makes a request so that the organization is cached, then changes it the way
an owner would (CLI use cases, or SQL as a hand-made change would), then checks the next
request against the database as it is now."""

from __future__ import annotations

import json
import threading
from datetime import date

import psycopg
import pytest
from sqlalchemy import event

from booking_service.runtime.extensions import KEY
from booking_service.use_cases.orgs import rotate_secret, set_hmac, update_rules
from booking_service.use_cases.resources import (
    add_resource,
    add_service,
    clear_day,
    set_day,
    set_weekly_hours,
)
from tests.support.helpers import (
    booked,
    booking,
    count,
    envelope,
    error_of,
    local_start,
    post,
    result_of,
    run_concurrently,
    statements_sent,
    tool_call,
)


def _availability(**arguments) -> dict:
    return envelope(tool_call("checkAvailability", **arguments))


def _status_update() -> dict:
    return {"message": {"type": "status-update", "status": "in-progress", "call": {"id": "c"}}}


def test_a_cached_organization_costs_no_lookup_and_its_catalogue_no_read(app, client, org):
    booked(post(client, org, envelope(tool_call(**booking()))))
    seen = statements_sent(app)

    booked(post(client, org, envelope(tool_call(**booking(start=local_start(hour=11))))))

    assert seen, "the booking sent no statement at all?"
    lookups = [s for s in seen if s.startswith("SELECT organizations.id")]
    catalogue = [s for s in seen if "FROM resources" in s and "FROM services" in s]
    assert lookups == [] and catalogue == [], seen
    # ... and the claim read the organization's version instead
    assert any("config_version" in s and "INSERT INTO tool_calls" in s for s in seen)


@pytest.mark.parametrize(
    "body",
    [
        envelope(tool_call(**booking())),  # confirmed by the ledger claim
        _availability(),  # no claim: confirmed before the answer goes out
        _status_update(),  # no tool call at all
    ],
    ids=["booking", "availability", "status-update"],
)
def test_a_rotated_secret_is_refused_on_the_next_request(client, org, runtime, body):
    booked(post(client, org, envelope(tool_call(**booking(start=local_start(hour=14))))))

    new_secret = rotate_secret(runtime.uow(), org.id)

    assert post(client, org, body).status_code == 401
    renewed = client.post(
        "/api/vapi/tools", json=body, headers={"Authorization": f"Bearer {new_secret}"}
    )
    assert renewed.status_code == 200


def test_a_booking_with_a_revoked_secret_leaves_nothing_behind(client, org, runtime, db):
    booked(post(client, org, envelope(tool_call(**booking(start=local_start(hour=14))))))
    before = count(db, "SELECT count(*) FROM tool_calls")

    rotate_secret(runtime.uow(), org.id)
    response = post(client, org, envelope(tool_call(**booking())))

    assert response.status_code == 401
    assert count(db, "SELECT count(*) FROM appointments") == 1
    assert count(db, "SELECT count(*) FROM tool_calls") == before


def test_a_changed_organization_row_by_hand_is_seen_on_the_next_request(client, org, db):
    """Not only our own code changes it: a trigger gives every UPDATE a new version."""
    booked(post(client, org, envelope(tool_call(**booking(start=local_start(hour=14))))))

    db.execute(
        "UPDATE organizations SET secret_hash = repeat('0', 64), previous_secret_hash = NULL"
        " WHERE id = %s",
        (org.id,),
    )

    assert post(client, org, envelope(tool_call(**booking()))).status_code == 401
    assert post(client, org, _availability()).status_code == 401


def test_requiring_signed_requests_takes_effect_on_the_next_request(client, org, runtime):
    booked(post(client, org, envelope(tool_call(**booking(start=local_start(hour=14))))))

    set_hmac(runtime.uow(), org.id, enable=True)
    response = post(client, org, envelope(tool_call(**booking())))

    assert response.status_code == 401


def test_a_new_resource_is_offered_on_the_next_request(client, org, runtime, db):
    first = post(client, org, _availability())
    assert "Dr Chen" not in first.get_data(as_text=True)

    add_resource(runtime.uow(), org.id, "Dr Chen", ["mon-sun 00:00-23:59"])

    assert "Dr Chen" in post(client, org, _availability()).get_data(as_text=True)
    booked(post(client, org, envelope(tool_call(**booking(resource="Dr Chen")))))
    assert db.execute(
        "SELECT r.name FROM appointments a JOIN resources r ON r.id = a.resource_id"
    ).fetchall() == [("Dr Chen",)]


def test_a_new_service_and_changed_rules_apply_on_the_next_request(client, org, runtime):
    booked(post(client, org, envelope(tool_call(**booking(start=local_start(hour=14))))))

    add_service(runtime.uow(), org.id, "Whitening", 90)
    result = booked(
        post(client, org, envelope(tool_call(**booking(service="Whitening", start=local_start()))))
    )
    assert result["appointment"]["service"] == "Whitening"
    assert result["appointment"]["end"].startswith(local_start(hour=11, minute=30))  # 90 min

    update_rules(runtime.uow(), org.id, horizon_days=1)
    late = envelope(tool_call(**booking(start=local_start(hour=16))))
    refusal = error_of(post(client, org, late))
    assert "advance" in refusal or "ahead" in refusal, refusal


def test_a_deleted_resource_is_not_offered_on_the_next_request(client, org, runtime, db):
    add_resource(runtime.uow(), org.id, "Dr Chen", ["mon-sun 00:00-23:59"])
    assert "Dr Chen" in post(client, org, _availability()).get_data(as_text=True)

    db.execute(
        "DELETE FROM working_hours WHERE resource_id IN "
        "(SELECT id FROM resources WHERE name = 'Dr Chen')"
    )
    db.execute("DELETE FROM resources WHERE name = 'Dr Chen'")

    assert "Dr Chen" not in post(client, org, _availability()).get_data(as_text=True)


@pytest.mark.parametrize("with_call_id", [True, False], ids=["call id", "no call id"])
def test_a_change_between_two_tool_calls_of_one_request(
    app, client, org, database_url, db, with_call_id
):
    """The second call's claim finds a new version: its transaction rolls back and the request
    runs again with the organization read afresh. The first call's booking stands, once, and
    keeps its answer (run again without a VAPI call id, it would be refused as a reused id)."""
    booked(post(client, org, envelope(tool_call(**booking(start=local_start(hour=9))))))
    claims = 0
    plain = database_url.replace("postgresql+psycopg://", "postgresql://")

    @event.listens_for(app.extensions[KEY].engine, "before_cursor_execute")
    def _change_before_second_claim(_conn, _cursor, sql, *_args):
        nonlocal claims
        if "INSERT INTO tool_calls" in sql:
            claims += 1
            if claims == 2:  # another connection changes the organization, and commits
                with psycopg.connect(plain, autocommit=True) as other:
                    other.execute(
                        "UPDATE organizations SET name = 'Renamed' WHERE id = %s", (org.id,)
                    )

    phone = "+14155550123"  # the caller's own number: without a call it is only a claim
    body = envelope(
        tool_call(call_id="first", **booking(start=local_start(hour=10), phone=phone)),
        tool_call(call_id="second", **booking(start=local_start(hour=11), phone=phone)),
    )
    if not with_call_id:
        del body["message"]["call"]
    response = post(client, org, body)

    results = response.get_json()["results"]
    assert [r.get("error") for r in results] == [None, None], results
    assert [json.loads(r["result"])["status"] for r in results] == ["booked", "booked"]
    assert claims == 3  # first, second (rolled back), second again
    assert count(db, "SELECT count(*) FROM appointments") == 3
    ids = "SELECT count(*) FROM tool_calls WHERE tool_call_id IN ('first', 'second')"
    assert count(db, ids) == 2


def test_versions_change_with_every_change_and_are_never_reused(db, make_org, runtime):
    a, b = make_org(name="A"), make_org(name="B")

    def version(org_id: int) -> int:
        return count(db, "SELECT config_version FROM organizations WHERE id = %s", org_id)

    def chair() -> int:
        return count(db, "SELECT min(id) FROM resources WHERE org_id = %s", a.id)

    seen = {version(a.id), version(b.id)}
    assert len(seen) == 2
    steps = [
        lambda: update_rules(runtime.uow(), a.id, slot_minutes=30),
        lambda: rotate_secret(runtime.uow(), a.id),
        lambda: add_resource(runtime.uow(), a.id, "Chair 2", ["mon-fri 09:00-17:00"]),
        lambda: db.execute("UPDATE resources SET name = 'Chair Two' WHERE name = 'Chair 2'"),
        lambda: add_service(runtime.uow(), a.id, "Cleaning", 30),
        lambda: db.execute("UPDATE services SET duration_minutes = 45 WHERE org_id = %s", (a.id,)),
        lambda: db.execute("DELETE FROM services WHERE org_id = %s", (a.id,)),
        lambda: set_weekly_hours(runtime.uow(), a.id, chair(), {0: "10:00-12:00"}),
        lambda: db.execute("UPDATE working_hours SET closes = '13:00' WHERE org_id = %s", (a.id,)),
        lambda: set_day(runtime.uow(), chair(), date(2030, 1, 1)),
        lambda: clear_day(runtime.uow(), a.id, chair(), date(2030, 1, 1)),
    ]
    for step in steps:
        before_b = version(b.id)
        step()
        now = version(a.id)
        assert now not in seen, step
        seen.add(now)
        assert version(b.id) == before_b  # another organization's cache stays valid


def test_requests_racing_a_rotation_never_succeed_with_the_old_secret_after_it(app, org, runtime):
    """Threads keep booking with the cached secret while it is rotated: once the rotation has
    committed, no request that starts afterwards is accepted with the old secret."""
    clients = [app.test_client() for _ in range(4)]
    for c in clients:
        post(c, org, _availability())  # cached in this worker
    rotated = threading.Event()
    late_successes: list[int] = []
    stop = threading.Event()

    def keep_asking(c) -> None:
        while not stop.is_set():
            after = rotated.is_set()
            status = post(c, org, _availability()).status_code
            if after and status != 401:
                late_successes.append(status)

    threads = [threading.Thread(target=keep_asking, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    try:
        threading.Event().wait(0.3)
        rotate_secret(runtime.uow(), org.id)
        rotated.set()
        threading.Event().wait(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert late_successes == []


# Opening hours (#17): a booking on a day the kept hours open inserts without reading the
# diary; every change to hours or exceptions gives a new version, and the insert itself keeps
# clear of what a blocking calendar says.


def _schedule_reads(seen: list[str]) -> list[str]:
    return [s for s in seen if "FROM working_hours" in s]


def _appointment_inserts(seen: list[str]) -> list[str]:
    return [s for s in seen if "INSERT INTO appointments" in s]


def _why_not_asked(seen: list[str]) -> list[str]:
    """The statements asking why an insert made nothing (AppointmentRepository.
    why_not_inserted)."""
    return [s for s in seen if s.startswith("SELECT EXISTS") and "AS reference_used" in s]


def _resource_id(db, org) -> int:
    return count(db, "SELECT id FROM resources WHERE org_id = %s ORDER BY id LIMIT 1", org.id)


def test_a_booking_on_an_open_day_inserts_without_reading_the_diary(app, client, org):
    booked(post(client, org, envelope(tool_call(**booking(start=local_start(hour=9))))))
    seen = statements_sent(app)

    booked(post(client, org, envelope(tool_call(**booking(start=local_start(hour=11))))))

    assert _schedule_reads(seen) == [], seen
    assert len(_appointment_inserts(seen)) == 1


def test_a_taken_time_is_refused_with_alternatives_after_the_insert(app, client, org, db):
    """The constraint refuses the insert at the organization's current version: the refusal
    is the one a read-first booking gave (taken, with the nearest free times), and the diary
    is not read again for it (#30)."""
    booked(post(client, org, envelope(tool_call(**booking()))))
    seen = statements_sent(app)

    rival = envelope(tool_call(**booking(name="Rival")), customer="+14155550999")
    refusal = error_of(post(client, org, rival))

    assert "already taken" in refusal and "10:30 AM" in refusal, refusal
    inserts = _appointment_inserts(seen)
    assert inserts and _schedule_reads(seen) == [], seen
    assert count(db, "SELECT count(*) FROM appointments") == 1


def test_a_time_booked_by_a_transaction_the_insert_waited_for_is_refused_as_taken(
    app, client, org, database_url, db
):
    """The insert waits for a rival booking of the same time, uncommitted when it started,
    and makes nothing once the rival commits; asked why, as of a statement after the insert,
    the database names the rival's booking. The caller hears "taken", never an error (a
    reason read in the insert's own snapshot would see no rival: see PERFORMANCE.md)."""
    other = envelope(tool_call(**booking(start=local_start(hour=14))), customer="+14155550999")
    booked(post(client, org, other))  # the rival's contact
    contact = count(db, "SELECT id FROM contacts WHERE org_id = %s", org.id)
    zone = count(db, "SELECT timezone FROM organizations WHERE id = %s", org.id)
    plain = database_url.replace("postgresql+psycopg://", "postgresql://")
    rival = psycopg.connect(plain)
    try:
        rival.execute(
            "INSERT INTO appointments (org_id, contact_id, resource_id, reference, starts_at, "
            "ends_at, blocked_until) SELECT %s, %s, %s, 'RIVAL1', s, s + interval '30 min', "
            "s + interval '30 min' FROM (SELECT %s::timestamp AT TIME ZONE %s AS s) t",
            (org.id, contact, _resource_id(db, org), local_start(), zone),
        )
        seen = statements_sent(app)
        answers: list = []
        caller = threading.Thread(
            target=lambda: answers.append(
                post(app.test_client(), org, envelope(tool_call(**booking(name="Late")))),
            )
        )
        caller.start()
        for _ in range(200):  # the caller's insert waits for the rival's transaction
            if count(db, "SELECT count(*) FROM pg_locks WHERE NOT granted"):
                break
            caller.join(0.05)
        else:
            pytest.fail("the caller's insert never waited for the rival booking")
        rival.commit()
        caller.join(10)
    finally:
        rival.close()

    refusal = error_of(answers[0])
    assert "already taken" in refusal, refusal
    assert len(_why_not_asked(seen)) == 1, seen
    assert count(db, "SELECT count(*) FROM appointments WHERE reference = 'RIVAL1'") == 1


def test_a_taken_time_whose_hours_changed_meanwhile_is_refused_by_the_new_hours(
    app, client, org, database_url, db
):
    """Taken, and the day closed after the claim read the version: the insert's refusal is
    not the answer (the hours it was tried under no longer hold); the diary read is, and it
    says closed."""
    booked(post(client, org, envelope(tool_call(**booking()))))
    rid = _resource_id(db, org)
    plain = database_url.replace("postgresql+psycopg://", "postgresql://")
    closed = []

    @event.listens_for(app.extensions[KEY].engine, "before_cursor_execute")
    def _close_the_day_after_the_claim(_conn, _cursor, sql, *_args):
        if sql.startswith("INSERT INTO contacts") and not closed:
            with psycopg.connect(plain, autocommit=True) as other:
                other.execute(
                    "INSERT INTO schedule_exceptions (org_id, resource_id, day) "
                    "VALUES (%s, %s, %s)",
                    (org.id, rid, local_start()[:10]),
                )
            closed.append(True)

    rival = envelope(tool_call(**booking(name="Rival")), customer="+14155550999")
    refusal = error_of(post(client, org, rival))

    assert closed and "closed" in refusal and "taken" not in refusal, refusal
    assert count(db, "SELECT count(*) FROM appointments") == 1


def test_the_next_free_resource_is_booked_when_the_first_is_taken(client, org, runtime, db):
    add_resource(runtime.uow(), org.id, "Dr Chen", ["mon-sun 00:00-23:59"])
    booked(post(client, org, envelope(tool_call(**booking()))))

    second = envelope(tool_call(**booking(name="Second")), customer="+14155550999")
    result = booked(post(client, org, second))

    assert result["appointment"]["resource"] == "Dr Chen"
    assert count(db, "SELECT count(DISTINCT resource_id) FROM appointments") == 2


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda runtime, db, org, rid: set_weekly_hours(
                runtime.uow(), org.id, rid, {d: "13:00-17:00" for d in range(7)}
            ),
            id="weekly hours",
        ),
        pytest.param(
            lambda runtime, db, org, rid: db.execute(
                "UPDATE working_hours SET opens = '13:00' WHERE resource_id = %s", (rid,)
            ),
            id="weekly hours by hand",
        ),
        pytest.param(
            lambda runtime, db, org, rid: set_day(
                runtime.uow(), rid, date.fromisoformat(local_start()[:10])
            ),
            id="closed day",
        ),
        pytest.param(
            lambda runtime, db, org, rid: db.execute(
                "INSERT INTO schedule_exceptions (org_id, resource_id, day, opens, closes) "
                "VALUES (%s, %s, %s, '13:00', '17:00')",
                (org.id, rid, local_start()[:10]),
            ),
            id="other hours by hand",
        ),
    ],
)
def test_changed_opening_hours_apply_on_the_next_booking(client, org, runtime, db, change):
    booked(post(client, org, envelope(tool_call(**booking(start=local_start(hour=14))))))

    change(runtime, db, org, _resource_id(db, org))
    refusal = error_of(post(client, org, envelope(tool_call(**booking()))))

    assert "opening hours" in refusal or "closed" in refusal, refusal
    assert count(db, "SELECT count(*) FROM appointments") == 1


def test_reopened_hours_take_a_booking_on_the_next_request(client, org, runtime, db):
    rid = _resource_id(db, org)
    day = date.fromisoformat(local_start()[:10])
    set_day(runtime.uow(), rid, day)  # closed that day
    assert "closed" in error_of(post(client, org, envelope(tool_call(**booking()))))

    clear_day(runtime.uow(), org.id, rid, day)

    booked(post(client, org, envelope(tool_call(**booking()))))


def _link(db, org, rid: int, start: str) -> int:
    """A fresh blocking calendar link with one busy hour from the local `start`."""
    link = count(
        db,
        "INSERT INTO calendar_links (org_id, resource_id, url, max_staleness_minutes, "
        "last_good_sync_at) VALUES (%s, %s, 'https://dav.example.com/x/', 60, now()) "
        "RETURNING id",
        org.id,
        rid,
    )
    db.execute(
        "INSERT INTO calendar_busy (org_id, link_id, resource_id, starts_at, ends_at) "
        "VALUES (%s, %s, %s, (%s::timestamp AT TIME ZONE 'America/New_York'), "
        "(%s::timestamp AT TIME ZONE 'America/New_York') + interval '1 hour')",
        (org.id, link, rid, start, start),
    )
    return link


def test_a_new_blocking_calendar_is_honoured_on_the_next_booking(client, org, db):
    booked(post(client, org, envelope(tool_call(**booking(start=local_start(hour=14))))))

    _link(db, org, _resource_id(db, org), local_start())
    refusal = error_of(post(client, org, envelope(tool_call(**booking()))))

    assert "already taken" in refusal, refusal
    assert count(db, "SELECT count(*) FROM appointments") == 1


def test_a_calendar_made_blocking_is_honoured_on_the_next_booking(client, org, db):
    link = _link(db, org, _resource_id(db, org), local_start())
    db.execute("UPDATE calendar_links SET block = false WHERE id = %s", (link,))
    booked(post(client, org, envelope(tool_call(**booking(start=local_start(hour=14))))))

    db.execute("UPDATE calendar_links SET block = true WHERE id = %s", (link,))
    refusal = error_of(post(client, org, envelope(tool_call(**booking()))))

    assert "already taken" in refusal, refusal


def test_racing_bookings_with_kept_hours_book_a_time_once(app, org, db):
    """Eight callers, one time, every worker thread booking straight from the kept hours:
    one is booked, the others are told it is taken, with alternatives."""
    client = app.test_client()
    booked(post(client, org, envelope(tool_call(**booking(start=local_start(hour=14))))))

    def attempt(i: int):
        body = envelope(
            tool_call(**booking(name=f"Caller {i}")),
            customer=f"+1415555{i:04d}",
            call_id=f"race-{i}",  # one phone call each: no call's change limit is reached
        )
        return post(app.test_client(), org, body).get_json()["results"][0]

    results = run_concurrently(8, attempt)

    assert [r for r in results if isinstance(r, BaseException)] == []
    wins = [r for r in results if "result" in r]
    assert len(wins) == 1, results
    for r in results:
        if r not in wins:
            assert "taken" in r["error"] and "10:30 AM" in r["error"], r
    assert count(db, "SELECT count(*) FROM appointments WHERE name LIKE 'Caller %%'") == 1


def test_hours_kept_for_an_older_version_are_not_used_by_a_fresh_read(client, org, runtime, db):
    """A new secret does not fit the kept row, so the organization is read afresh (nothing is
    forgotten on that path): the hours kept under its older version must not answer."""
    booked(post(client, org, envelope(tool_call(**booking(start=local_start(hour=14))))))
    set_weekly_hours(runtime.uow(), org.id, _resource_id(db, org), {0: "13:00-17:00"})
    new_secret = rotate_secret(runtime.uow(), org.id)

    response = client.post(
        "/api/vapi/tools",
        json=envelope(tool_call(**booking())),
        headers={"Authorization": f"Bearer {new_secret}"},
    )

    assert "opening hours" in error_of(response) or "closed" in error_of(response)


def test_hours_changed_while_a_booking_runs_are_what_it_is_held_to(
    app, client, org, database_url, db
):
    """The claim confirmed the version; the day is closed after it (as while a claim waits for
    its lock) but before the insert: the insert is made only while the version holds, so the
    booking reads the diary again and is refused."""
    booked(post(client, org, envelope(tool_call(**booking(start=local_start(hour=14))))))
    rid = _resource_id(db, org)
    plain = database_url.replace("postgresql+psycopg://", "postgresql://")
    closed = []

    @event.listens_for(app.extensions[KEY].engine, "before_cursor_execute")
    def _close_the_day_after_the_claim(_conn, _cursor, sql, *_args):
        if sql.startswith("INSERT INTO contacts") and not closed:
            with psycopg.connect(plain, autocommit=True) as other:
                other.execute(
                    "INSERT INTO schedule_exceptions (org_id, resource_id, day) "
                    "VALUES (%s, %s, %s)",
                    (org.id, rid, local_start()[:10]),
                )
            closed.append(True)

    refusal = error_of(post(client, org, envelope(tool_call(**booking()))))

    assert closed and "closed" in refusal, refusal
    assert count(db, "SELECT count(*) FROM appointments") == 1


def test_busy_times_left_by_a_calendar_that_no_longer_blocks_do_not_block(client, org, db):
    """The worker stops reading a link's busy times when it stops blocking; those left behind
    must not keep the time taken (not on the kept-hours path, not on the diary read)."""
    link = _link(db, org, _resource_id(db, org), local_start())
    day = _availability(date=local_start()[:10])
    assert "10:00" not in _offered(post(client, org, day))
    assert "already taken" in error_of(post(client, org, envelope(tool_call(**booking()))))

    db.execute("UPDATE calendar_links SET block = false WHERE id = %s", (link,))

    assert "10:00" in _offered(post(client, org, day))
    booked(post(client, org, envelope(tool_call(**booking()))))


def _offered(response) -> list[str]:
    """The local start times (HH:MM) an availability answer offers."""
    return [slot["start"][11:16] for slot in result_of(response)["slots"]]


def test_a_resource_with_a_fresh_calendar_books_without_reading_the_diary(app, client, org, db):
    """The insert itself keeps clear of the calendar's busy times (and of a stale calendar),
    so a linked resource needs no diary read either."""
    _link(db, org, _resource_id(db, org), local_start(hour=15))  # busy 15:00-16:00
    booked(post(client, org, envelope(tool_call(**booking(start=local_start(hour=9))))))
    seen = statements_sent(app)

    booked(post(client, org, envelope(tool_call(**booking()))))
    refusal = error_of(
        post(client, org, envelope(tool_call(**booking(start=local_start(hour=15)))))
    )

    assert "already taken" in refusal, refusal
    inserts = _appointment_inserts(seen)
    assert len(inserts) == 2 and len(_schedule_reads(seen)) >= 1, seen
    assert seen.index(inserts[0]) < seen.index(_schedule_reads(seen)[0])  # booked: no read


@pytest.mark.parametrize("policy", ["refuse", "book"])
def test_a_stale_calendar_keeps_its_policy(client, org, db, policy):
    link = _link(db, org, _resource_id(db, org), local_start(hour=15))
    booked(post(client, org, envelope(tool_call(**booking(start=local_start(hour=9))))))
    db.execute(
        "UPDATE calendar_links SET last_good_sync_at = now() - interval '2 hours', "
        "when_stale = %s WHERE id = %s",
        (policy, link),
    )

    response = post(client, org, envelope(tool_call(**booking())))

    if policy == "refuse":
        assert "the diary can't be checked" in error_of(response)
        assert count(db, "SELECT count(*) FROM appointments") == 1
    else:
        booked(response)
        assert count(db, "SELECT count(*) FROM appointments WHERE unconfirmed") == 1
