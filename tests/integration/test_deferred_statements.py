"""Statements deferred to the next one's trip (repositories/driver.defer): a SAVEPOINT travels
with the first statement inside its block, and a ROLLBACK TO with the first statement after
it, in one round trip (counted on the wire), and still do exactly what they did sent on their
own; a ROLLBACK TO that no statement follows goes before COMMIT."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import bindparam, event, select, text

from booking_service.domain.errors import DatabaseUnavailable, UniqueViolation
from booking_service.persistence.db import _closed_by_server
from booking_service.persistence.models import Organization
from booking_service.persistence.repositories.driver import HotStatement, defer
from booking_service.runtime.extensions import KEY
from tests.support.app import make_app
from tests.support.wire import counting_relay

_INSERT = HotStatement(
    text("INSERT INTO contacts (org_id, phone, name) VALUES (:org, :phone, :name)")
)
_NAMES = HotStatement(select(Organization.name).where(Organization.id == bindparam("p_id")))
_COUNT = "SELECT count(*) FROM contacts"
_COUNTED = HotStatement(text(_COUNT))


@pytest.fixture
def counted(database_url, db):
    """The test's database behind the counting relay: (runtime, round trips so far)."""
    port = int(database_url.rsplit(":", 1)[1].split("/")[0])
    with counting_relay(port) as (relay_port, trips):
        app = make_app(database_url.replace(f":{port}/", f":{relay_port}/"))
        try:
            yield app.extensions[KEY], trips
        finally:
            app.extensions[KEY].engine.dispose()


def _statements(runtime):
    seen: list[str] = []
    event.listen(runtime.engine, "before_cursor_execute", lambda _c, _k, sql, *_a: seen.append(sql))
    return seen


def test_a_savepoint_travels_with_the_first_statement_of_its_block(counted, org):
    runtime, trips = counted
    with runtime.uow() as uow:
        _NAMES.execute(uow.session, {"p_id": org.id})  # BEGIN, then the statement
        before = trips.value
        with uow.savepoint():
            _NAMES.execute(uow.session, {"p_id": org.id})
        assert trips.value - before == 1  # SAVEPOINT and the statement: one trip


def test_a_violation_rolls_back_to_the_savepoint_sent_with_it(counted, org, db):
    runtime, _ = counted
    with runtime.uow() as uow:
        _INSERT.execute(uow.session, {"org": org.id, "phone": "+14155550100", "name": "Kept"})
        with pytest.raises(UniqueViolation), uow.savepoint():
            _INSERT.execute(uow.session, {"org": org.id, "phone": "+14155550101", "name": "A"})
            _INSERT.execute(uow.session, {"org": org.id, "phone": "+14155550101", "name": "B"})
        # The transaction goes on, with the work before the savepoint and none inside it.
        assert uow.session.execute(text(_COUNT)).scalar() == 1
        uow.commit()
    assert db.execute("SELECT name FROM contacts").fetchall() == [("Kept",)]


def test_a_violation_in_sqlalchemys_own_statement_rolls_back_to_the_savepoint(counted, org, db):
    """A statement that is not hot sends the deferred SAVEPOINT ahead of itself."""
    runtime, _ = counted
    insert = text("INSERT INTO contacts (org_id, phone, name) VALUES (:org, :phone, :name)")
    with runtime.uow() as uow:
        _INSERT.execute(uow.session, {"org": org.id, "phone": "+14155550100", "name": "Kept"})
        with pytest.raises(UniqueViolation), uow.savepoint():
            uow.session.execute(insert, {"org": org.id, "phone": "+14155550102", "name": "A"})
            uow.session.execute(insert, {"org": org.id, "phone": "+14155550102", "name": "B"})
        assert uow.session.execute(text(_COUNT)).scalar() == 1
        uow.commit()
    assert db.execute("SELECT name FROM contacts").fetchall() == [("Kept",)]


def test_a_savepoint_around_no_statement_is_never_sent(counted, org):
    runtime, trips = counted
    seen = _statements(runtime)
    with runtime.uow() as uow:
        _NAMES.execute(uow.session, {"p_id": org.id})
        before = trips.value
        with uow.savepoint():
            pass
        with pytest.raises(KeyError), uow.savepoint():
            raise KeyError("nothing was sent inside")
        assert trips.value == before
        # The next statement does not carry them either.
        assert _NAMES.execute(uow.session, {"p_id": org.id}).scalar() == org.info.name
    assert not any("SAVEPOINT" in sql for sql in seen)


def test_nested_savepoints_sent_together_roll_back_to_the_inner_one(counted, org, db):
    runtime, trips = counted
    with runtime.uow() as uow:
        _NAMES.execute(uow.session, {"p_id": org.id})
        before = trips.value
        with uow.savepoint():
            with pytest.raises(UniqueViolation), uow.savepoint():
                _INSERT.execute(
                    uow.session, {"org": org.id, "phone": "+14155550103", "name": "Outer"}
                )
                _INSERT.execute(
                    uow.session, {"org": org.id, "phone": "+14155550103", "name": "Again"}
                )
            _INSERT.execute(uow.session, {"org": org.id, "phone": "+14155550104", "name": "B"})
        # Both SAVEPOINTs with the first insert, the duplicate, ROLLBACK TO with the last insert.
        assert trips.value - before == 3
        uow.commit()
    assert db.execute("SELECT name FROM contacts").fetchall() == [("B",)]


def test_a_connection_killed_inside_a_savepoint_block_is_an_outage(counted, org, db):
    """The statement that carried the SAVEPOINT meets a dead connection: the caller hears
    "unavailable" (not SQLAlchemy's complaint about an invalid transaction), and the pool
    hands out a working connection next."""
    runtime, _ = counted
    with pytest.raises(DatabaseUnavailable), runtime.uow() as uow:
        pid = uow.session.execute(text("SELECT pg_backend_pid()")).scalar()
        db.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with uow.savepoint():
            _NAMES.execute(uow.session, {"p_id": org.id})
    with runtime.uow() as uow:
        assert _NAMES.execute(uow.session, {"p_id": org.id}).scalar() == org.info.name


def test_a_pooled_connection_left_mid_statement_is_replaced_not_reused(database_url):
    """A pipeline cut off by a failure can leave a connection ACTIVE with answers unread
    (seen once in the database-restart stack test: the next request's autocommit switch
    failed with "connection in transaction status ACTIVE"). The checkout treats it as closed."""
    idle = psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True)
    try:
        assert not _closed_by_server(idle)
        idle.pgconn.send_query(b"SELECT pg_sleep(0.2)")  # sent, its answer never read
        assert idle.info.transaction_status == psycopg.pq.TransactionStatus.ACTIVE
        assert _closed_by_server(idle)
    finally:
        idle.close()


def test_what_a_transaction_queued_and_never_sent_does_not_ride_into_the_next(counted, org):
    """A transaction-local setting queued after a transaction's last statement (driver.defer,
    not `required`) is that transaction's: once it ended, the next one on the connection must
    not send it."""
    runtime, _ = counted
    seen = _statements(runtime)
    with runtime.uow() as uow:
        _NAMES.execute(uow.session, {"p_id": org.id})
        defer(uow.session, "SELECT set_config('application_name', 'left over', true)")
        uow.commit()
    with runtime.uow() as uow:
        _NAMES.execute(uow.session, {"p_id": org.id})
        name = uow.session.execute(text("SHOW application_name")).scalar()

    assert name != "left over"
    assert not [s for s in seen if "left over" in s], seen


def _kept_then_a_block_that_raises(uow, org, kept: str, gone: str) -> None:
    """A row "Kept" before a savepoint, then a block that inserts "Gone" (sending the
    SAVEPOINT with it) and raises: its ROLLBACK TO is left queued."""
    _INSERT.execute(uow.session, {"org": org.id, "phone": kept, "name": "Kept"})
    with pytest.raises(KeyError), uow.savepoint():
        _INSERT.execute(uow.session, {"org": org.id, "phone": gone, "name": "Gone"})
        raise KeyError("refused")


def test_a_rollback_to_travels_with_the_next_statement(counted, org, db):
    """A block that raised after its savepoint was sent: its ROLLBACK TO costs no trip of its
    own (a refusal's rides with its answer's UPDATE, #30)."""
    runtime, trips = counted
    with runtime.uow() as uow:
        _kept_then_a_block_that_raises(uow, org, "+14155550110", "+14155550111")
        before = trips.value
        assert _COUNTED.execute(uow.session).scalar() == 1  # the block's row is gone
        assert trips.value - before == 1
        uow.commit()
    assert db.execute("SELECT name FROM contacts").fetchall() == [("Kept",)]


def test_a_rollback_to_that_nothing_follows_goes_before_commit(counted, org, db):
    """Committing right after a block that raised: without its ROLLBACK TO, COMMIT would keep
    the block's row."""
    runtime, _ = counted
    with runtime.uow() as uow:
        _kept_then_a_block_that_raises(uow, org, "+14155550112", "+14155550113")
        uow.commit()
    assert db.execute("SELECT name FROM contacts").fetchall() == [("Kept",)]


def test_commit_after_a_violation_rolled_back_to_its_savepoint_keeps_the_work_before(
    counted, org, db
):
    """After a violation the transaction is aborted until ROLLBACK TO; PostgreSQL answers a
    COMMIT then with ROLLBACK, silently. Sent before the COMMIT, the ROLLBACK TO keeps the
    transaction's work."""
    runtime, _ = counted
    with runtime.uow() as uow:
        _INSERT.execute(uow.session, {"org": org.id, "phone": "+14155550114", "name": "Kept"})
        with pytest.raises(UniqueViolation), uow.savepoint():
            _INSERT.execute(uow.session, {"org": org.id, "phone": "+14155550114", "name": "Dup"})
        uow.commit()
    assert db.execute("SELECT name FROM contacts").fetchall() == [("Kept",)]


def test_a_rollback_to_does_not_outlive_its_transaction(counted, org, db):
    """A transaction rolled back whole takes its queued ROLLBACK TO along: the next
    transaction on the connection neither sends it nor fails on it."""
    runtime, _ = counted
    seen = _statements(runtime)
    with runtime.uow() as uow:
        _NAMES.execute(uow.session, {"p_id": org.id})
        with pytest.raises(KeyError), uow.savepoint():
            _INSERT.execute(uow.session, {"org": org.id, "phone": "+14155550115", "name": "Gone"})
            raise KeyError("refused")
        uow.rollback()
    seen.clear()
    with runtime.uow() as uow:
        _INSERT.execute(uow.session, {"org": org.id, "phone": "+14155550116", "name": "Next"})
        uow.commit()
    assert db.execute("SELECT name FROM contacts").fetchall() == [("Next",)]
    assert not [s for s in seen if "ROLLBACK TO" in s], seen
