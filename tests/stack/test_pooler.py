"""Behind a transaction-mode pooler (Debian's PgBouncer, its defaults): DB_POOLER=transaction
keeps no session state on a server connection and every guarantee holds."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

from booking_service.devtools import pgcluster
from booking_service.domain.errors import DatabaseUnavailable
from booking_service.persistence.repositories.driver import HotStatement
from booking_service.runtime.extensions import KEY
from booking_service.use_cases.orgs import update_rules
from booking_service.use_cases.webhooks import add_endpoint
from booking_service.worker.loop import Worker
from tests.support.app import make_app
from tests.support.helpers import (
    booking,
    count,
    envelope,
    local_start,
    post,
    run_concurrently,
    tool_call,
)
from tests.support.pooler import pgbouncer, through
from tests.support.receiver import receiver
from tests.support.wire import counting_relay

SERVER_CONNECTIONS = 4  # fewer than the clients: server connections really are shared


@pytest.fixture
def pooled_url(database_url, db):
    with pgbouncer(db.info.host, db.info.port, pool_size=SERVER_CONNECTIONS) as port:
        yield through(database_url, port)


def _pooled_app(url: str, **settings):
    app = make_app(
        url, DB_POOLER="transaction", DB_POOL_SIZE=8, WEBHOOK_ALLOW_PRIVATE_TARGETS=True, **settings
    )
    yield app
    app.extensions[KEY].engine.dispose()


@pytest.fixture
def pooled_app(pooled_url):
    """The product's own statement timeout: bookings of one caller queue on the contact's row
    lock by design, and a shortened timeout would make these tests measure the machine."""
    yield from _pooled_app(pooled_url)


@pytest.fixture
def impatient_app(pooled_url):
    """A 300 ms statement timeout, so the timeout test need not wait long."""
    yield from _pooled_app(pooled_url, DB_STATEMENT_TIMEOUT_MS=300)


def test_without_db_pooler_the_service_cannot_connect_through_pgbouncer(pooled_url):
    """The incident this setting answers: statement timeouts sent as startup options."""
    app = make_app(pooled_url)
    try:
        response = app.test_client().get("/api/health")
    finally:
        app.extensions[KEY].engine.dispose()
    assert response.status_code == 503 and response.get_json()["database"] == "unavailable"


def test_two_hundred_bookings_eight_at_a_time_all_succeed(pooled_app, org, db):
    """The measured failure: 72 of 200 bookings failed on prepared statements meeting other
    clients' server connections. Each worker thread books 25 distinct callers."""

    def book_25(t):
        client = pooled_app.test_client()
        failures = []
        for i in range(25):
            k = t * 25 + i
            body = envelope(
                tool_call(
                    **booking(
                        start=local_start(
                            days=3 + k // 16, hour=9 + (k % 16) // 2, minute=30 * (k % 2)
                        )
                    )
                ),
                customer=f"+1202555{k:04d}",
                call_id=f"call-{k}",
            )
            entry = post(client, org, body).get_json()["results"][0]
            if "result" not in entry:
                failures.append(entry)
        return failures

    update_rules(pooled_app.extensions[KEY].uow(), org.id, horizon_days=365)
    results = run_concurrently(8, book_25)

    assert all(not isinstance(r, BaseException) for r in results), results
    assert [f for r in results for f in r] == []
    assert count(db, "SELECT count(*) FROM appointments") == 200
    assert count(db, "SELECT count(*) FROM outbox_events") == 200


def test_concurrent_bookings_for_one_new_phone_make_one_contact(pooled_app, org, db):
    update_rules(pooled_app.extensions[KEY].uow(), org.id, max_upcoming_per_caller=100)
    bodies = [
        envelope(
            tool_call(**booking(start=local_start(days=7 + i // 8, hour=9 + i % 8))),
            call_id=f"vapi-{i}",
        )
        for i in range(16)
    ]
    results = run_concurrently(16, lambda i: post(pooled_app.test_client(), org, bodies[i]))

    assert all("result" in r.get_json()["results"][0] for r in results)
    assert count(db, "SELECT count(*) FROM contacts") == 1
    assert count(db, "SELECT count(*) FROM appointments") == 16


def test_twenty_callers_for_one_slot_book_exactly_one(pooled_app, org, db):
    start = local_start(days=5, hour=11)
    bodies = [
        envelope(
            tool_call(**booking(start=start)),
            customer=f"+1202555{i:04d}",
            call_id=f"race-{i}",
        )
        for i in range(20)
    ]
    results = run_concurrently(20, lambda i: post(pooled_app.test_client(), org, bodies[i]))
    entries = [r.get_json()["results"][0] for r in results]

    assert sum("result" in e for e in entries) == 1
    assert all("taken" in e["error"] for e in entries if "error" in e)
    assert count(db, "SELECT count(*) FROM appointments WHERE status = 'booked'") == 1


def test_the_statement_timeout_holds_through_the_pooler_and_leaves_no_session_state(
    impatient_app, pooled_url
):
    rt = impatient_app.extensions[KEY]
    with rt.uow() as uow:
        inside = uow.session.execute(text("SELECT current_setting('statement_timeout')")).scalar()
    with rt.uow() as uow:  # one transaction: one server connection throughout
        for _ in range(12):  # psycopg prepares a statement after its 5th execution by default
            uow.organizations.get(1)
        prepared = uow.session.execute(text("SELECT count(*) FROM pg_prepared_statements"))
        assert prepared.scalar() == 0, "a prepared statement on a shared server connection"
    with pytest.raises(DatabaseUnavailable), rt.uow() as uow:
        uow.session.execute(text("SELECT pg_sleep(5)"))  # cancelled after 300 ms

    # A plain client of the same pooler gets server connections with PostgreSQL's defaults:
    # nothing we set outlived our transactions.
    port = int(pooled_url.rsplit(":", 1)[1].split("/")[0])
    dbname = pooled_url.rsplit("/", 1)[1]
    with psycopg.connect(
        f"host=127.0.0.1 port={port} user={pgcluster.SUPERUSER} dbname={dbname}",
        prepare_threshold=None,
        autocommit=True,
    ) as plain:
        for _ in range(SERVER_CONNECTIONS * 2):  # meet every server connection
            assert plain.execute("SHOW statement_timeout").fetchone() == ("0",)
    assert inside == "300ms"


def test_each_event_is_delivered_once_through_the_pooler(pooled_app, org, db):
    rt = pooled_app.extensions[KEY]
    with receiver() as hooks:
        hooks.secrets.append(add_endpoint(rt.uow(), org.id, hooks.url, allow_private=True).secret)
        for i in range(6):
            body = envelope(
                tool_call(**booking(start=local_start(days=5 + i))),
                customer=f"+1202555{i:04d}",
                call_id=f"w-{i}",
            )
            assert "result" in post(pooled_app.test_client(), org, body).get_json()["results"][0]
        workers = [Worker(rt.uow, rt.settings) for _ in range(2)]
        run_concurrently(2, lambda i: workers[i].deliver_due())

        ids = hooks.ids()
        assert len(ids) == 6 and len(set(ids)) == 6
        assert len(hooks.verified()) == 6


@pytest.fixture
def one_server_connection(database_url, db):
    """PgBouncer with a single server connection: every client's transaction runs on it."""
    with pgbouncer(db.info.host, db.info.port, pool_size=1) as port:
        yield port, through(database_url, port)


SETTINGS_SEEN = (
    "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), "
    "current_setting('TimeZone'), pg_backend_pid()"
)


def test_budgets_of_a_committed_transaction_do_not_outlive_it_on_the_server_connection(
    one_server_connection, org
):
    """The budgets are set with set_config(..., true): transaction-local. Set for the session
    instead, a COMMIT would keep them on the server connection for the pooler's next client
    (a rollback would undo them, which is why the test above, whose transactions all roll back,
    could not tell). Another client's plain transaction on that one connection sees the
    server's defaults before and after ours, committed ones included."""
    port, url = one_server_connection
    dbname = url.rsplit("/", 1)[1]

    def plain_client() -> tuple:
        with (
            psycopg.connect(
                f"host=127.0.0.1 port={port} user={pgcluster.SUPERUSER} dbname={dbname}",
                prepare_threshold=None,
            ) as plain,
            plain.transaction(),
        ):
            return plain.execute(SETTINGS_SEEN).fetchone()

    before = plain_client()
    pooled = make_app(
        url, DB_POOLER="transaction", DB_STATEMENT_TIMEOUT_MS=4321, DB_LOCK_TIMEOUT_MS=1234
    )
    try:
        rt = pooled.extensions[KEY]
        with rt.uow() as uow:
            inside = uow.session.execute(text(SETTINGS_SEEN)).one()
            uow.commit()
        after_commit = plain_client()
        # A booking's transactions, committed as any request's.
        body = envelope(tool_call(**booking()), call_id="pooled-1")
        assert "result" in post(pooled.test_client(), org, body).get_json()["results"][0]
    finally:
        pooled.extensions[KEY].engine.dispose()
    after_booking = plain_client()

    assert tuple(inside[:3]) == ("4321ms", "1234ms", "UTC")  # the budgets did apply inside
    assert before[:2] != ("4321ms", "1234ms")
    # One server connection throughout: the plain client met the connection we used.
    assert before[3] == inside[3] == after_commit[3] == after_booking[3]
    assert after_commit == before
    assert after_booking == before


_BUDGETS_SEEN = HotStatement(
    text("SELECT current_setting('statement_timeout') AS s, current_setting('lock_timeout') AS l")
)
_SLEEP = HotStatement(text("SELECT pg_sleep(:seconds)"))


def test_the_budgets_bound_a_hot_first_statement_and_share_its_trip(pooled_url):
    """The budgets are their own statement, so they bound the transaction's first one too,
    but they travel with it (driver.defer): behind the pooler a transaction costs the same
    trips as directly connected (BEGIN, then each statement)."""
    port = int(pooled_url.rsplit(":", 1)[1].split("/")[0])
    with counting_relay(port) as (relay_port, trips):
        app = make_app(
            pooled_url.replace(f":{port}/", f":{relay_port}/"),
            DB_POOLER="transaction",
            DB_STATEMENT_TIMEOUT_MS=300,
            DB_LOCK_TIMEOUT_MS=200,
        )
        rt = app.extensions[KEY]
        try:
            with rt.uow() as uow:  # connects (SQLAlchemy's first-connect queries included)
                _BUDGETS_SEEN.execute(uow.session)
            with rt.uow() as uow:
                before = trips.value
                seen = _BUDGETS_SEEN.execute(uow.session).one()
                assert trips.value - before == 2  # BEGIN; the budgets with the statement
            with pytest.raises(DatabaseUnavailable), rt.uow() as uow:
                _SLEEP.execute(uow.session, {"seconds": 5})  # cancelled after 300 ms
        finally:
            rt.engine.dispose()
    assert tuple(seen) == ("300ms", "200ms")
