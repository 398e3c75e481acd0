"""The hot statements stay prepared on a pooled connection across what rolls back (#30).

psycopg forgets every statement it prepared, and sends DEALLOCATE ALL, when it rolls back a
transaction. A request that only reads (an availability check) ends its unit of work with a
ROLLBACK, so the next bookings on that connection were parsed and planned afresh until psycopg
prepared their statements again: in a real call, availability then booking, nearly always.
The engine rolls back through libpq instead (`db.rollback_keeping_statements`).
"""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

from booking_service.persistence.db import rollback_keeping_statements
from booking_service.runtime.extensions import KEY
from tests.support.app import make_app
from tests.support.helpers import (
    booked,
    booking,
    envelope,
    local_start,
    post,
    result_of,
    tool_call,
)


@pytest.fixture
def app(database_url):
    """One pooled connection, so that every request below uses the same server session."""
    application = make_app(database_url, DB_POOL_SIZE=1)
    yield application
    application.extensions[KEY].engine.dispose()


def _prepared(app) -> set[str]:
    """The names of the statements prepared on the app's one pooled connection."""
    engine = app.extensions[KEY].engine
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        rows = connection.execute(text("SELECT name FROM pg_prepared_statements"))
        return {name for (name,) in rows}


def _book_six(client, org, days: int) -> None:
    """Six bookings of new callers on the `days`-th business day from now, 9 AM to 2 PM:
    psycopg prepares a statement at its fifth execution."""
    for i in range(6):
        body = envelope(
            tool_call(**booking(start=local_start(days=days, hour=9 + i))),
            customer=f"+1415555{days:02d}{i:02d}",
            call_id=f"call-{days}-{i}",  # one phone call each: no call's change limit is met
        )
        booked(post(client, org, body))


def test_an_availability_check_leaves_the_hot_statements_prepared(app, client, org):
    _book_six(client, org, days=7)
    before = _prepared(app)
    assert before, "psycopg prepared nothing: the test proves nothing"

    day = local_start(days=9)[:10]
    result_of(post(client, org, envelope(tool_call("checkAvailability", date=day))))

    assert _prepared(app) == before
    # The next booking runs on them, and prepares nothing anew.
    booked(post(client, org, envelope(tool_call(**booking(start=local_start(days=10))))))
    assert _prepared(app) == before


def test_a_refused_booking_leaves_the_hot_statements_prepared(app, client, org):
    """A refusal rolls back to its savepoint; psycopg forgets its statements the first time
    it sees that ROLLBACK TO (a command it reads as a rollback) and never again, unless a
    ROLLBACK makes it forget what it has seen. Two refusals, then bookings, keep them."""
    _book_six(client, org, days=7)
    for i in range(2):
        rival = envelope(
            tool_call(**booking(start=local_start(hour=9))), customer=f"+141555598{i:02d}"
        )
        assert "taken" in post(client, org, rival).get_json()["results"][0]["error"]
    _book_six(client, org, days=8)
    prepared = _prepared(app)

    day = local_start(days=9)[:10]
    result_of(post(client, org, envelope(tool_call("checkAvailability", date=day))))
    rival = envelope(tool_call(**booking(start=local_start(hour=10))), customer="+14155559870")
    assert "taken" in post(client, org, rival).get_json()["results"][0]["error"]

    assert _prepared(app) >= prepared


def test_a_rollback_keeping_statements_rolls_back(database_url):
    """What it keeps is psycopg's statements, not the transaction's work; psycopg then
    begins the next transaction as usual."""
    plain = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as conn:
        for _ in range(6):
            conn.execute("SELECT count(*) FROM contacts WHERE org_id = %s", (0,))
        conn.execute("CREATE TEMP TABLE kept_or_not (x int)")
        conn.execute("INSERT INTO kept_or_not VALUES (1)")
        rollback_keeping_statements(conn)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 1
        assert conn.execute("SELECT to_regclass('pg_temp.kept_or_not')").fetchone()[0] is None
        # Still in a transaction of psycopg's own making, which a ROLLBACK here undoes.
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        conn.rollback()


def test_a_broken_connection_rolls_back_into_the_drivers_error(database_url, db):
    plain = database_url.replace("postgresql+psycopg://", "postgresql://")
    conn = psycopg.connect(plain)
    try:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        db.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError):
            rollback_keeping_statements(conn)
    finally:
        conn.close()
