"""Hot statements (repositories/driver.py) keep what SQLAlchemy execution gave the booking path:
errors as SQLAlchemy's exceptions with their SQLSTATE, no parameters in them, dead connections
replaced, listeners told, the same transaction."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import bindparam, event, select, text
from sqlalchemy.exc import IntegrityError, InvalidRequestError, OperationalError

from booking_service.domain.errors import DatabaseUnavailable
from booking_service.persistence.models import Contact, Organization
from booking_service.persistence.repositories.driver import HotStatement

PHONE = "+14155550123"
_BAD_INSERT = HotStatement(
    text("INSERT INTO contacts (org_id, phone, name) VALUES (:org, :phone, :name)")
)
_SLEEP = HotStatement(text("SELECT pg_sleep(:seconds)"))
_NAMES = HotStatement(select(Organization.name).where(Organization.id == bindparam("p_id")))


def test_an_error_is_sqlalchemys_with_its_sqlstate_and_no_parameters(runtime, org):
    """As with SQLAlchemy's own execution (hide_parameters), the bound values are not in the
    error; the server's own DETAIL line (which names the conflicting key) still is, as it
    always was, so such errors are mapped to domain errors and never logged as text."""
    name = "Caller Name Never Shown"
    with runtime.uow() as uow:
        _BAD_INSERT.execute(uow.session, {"org": org.id, "phone": PHONE, "name": "A"})
        with pytest.raises(IntegrityError) as caught:
            _BAD_INSERT.execute(uow.session, {"org": org.id, "phone": PHONE, "name": name})
    assert caught.value.orig.sqlstate == "23505"
    assert caught.value.orig.diag.constraint_name == "uq_contacts_org_phone"
    assert name not in str(caught.value) and "parameters" not in str(caught.value)


def test_it_runs_in_the_unit_of_works_transaction(runtime, org, db):
    with runtime.uow() as uow:
        _BAD_INSERT.execute(uow.session, {"org": org.id, "phone": PHONE, "name": "A"})
        # Seen inside the transaction by SQLAlchemy's own execution, not outside before commit.
        inside = uow.session.execute(select(Contact.name)).scalars().all()
        assert inside == ["A"]
        assert db.execute("SELECT count(*) FROM contacts").fetchone() == (0,)
        uow.rollback()
    assert db.execute("SELECT count(*) FROM contacts").fetchone() == (0,)


def test_a_connection_killed_under_it_is_replaced(runtime, org, db):
    with pytest.raises(DatabaseUnavailable), runtime.uow() as uow:
        pid = uow.session.execute(text("SELECT pg_backend_pid()")).scalar()
        db.execute("SELECT pg_terminate_backend(%s)", (pid,))
        _NAMES.execute(uow.session, {"p_id": org.id})
    with runtime.uow() as uow:  # the pool hands out a working connection again
        assert _NAMES.execute(uow.session, {"p_id": org.id}).scalar() == org.info.name


def test_the_statement_timeout_still_applies(runtime):
    with pytest.raises(DatabaseUnavailable), runtime.uow() as uow:
        uow.session.execute(text("SET LOCAL statement_timeout = 100"))
        _SLEEP.execute(uow.session, {"seconds": 2})


def test_listeners_see_each_hot_statement(runtime, org):
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", record)
    try:
        with runtime.uow() as uow:
            _NAMES.execute(uow.session, {"p_id": org.id})
    finally:
        event.remove(runtime.engine, "before_cursor_execute", record)
    assert any("FROM organizations" in s for s in seen)


def test_an_expanding_in_list_cannot_be_hot(runtime):
    expanding = HotStatement(
        select(Organization.id).where(Organization.id.in_(bindparam("ids", expanding=True)))
    )
    with pytest.raises(TypeError), runtime.uow() as uow:
        expanding.execute(uow.session, {"ids": [1, 2]})


def test_a_lock_wait_past_the_lock_timeout_keeps_its_sqlstate(runtime, org, database_url):
    """The ledger's claim tells a lock timeout (55P03) from an outage by the SQLSTATE."""
    locking = HotStatement(text("SELECT 1 FROM organizations WHERE id = :id FOR UPDATE"))
    sqlstates = []
    holder = psycopg.connect(database_url.replace("+psycopg", ""))
    try:
        holder.execute("SELECT 1 FROM organizations WHERE id = %s FOR UPDATE", (org.id,))
        with pytest.raises(DatabaseUnavailable), runtime.uow() as uow:
            uow.session.execute(text("SET LOCAL lock_timeout = 100"))
            try:
                locking.execute(uow.session, {"id": org.id})
            except OperationalError as exc:
                sqlstates.append(exc.orig.sqlstate)
                raise
    finally:
        holder.close()
    assert sqlstates == ["55P03"]


def test_a_parameter_left_out_is_an_error_not_a_null(runtime, org):
    """As with SQLAlchemy's own execution: a misspelled key must not quietly become NULL."""
    with pytest.raises(InvalidRequestError, match="p_id"), runtime.uow() as uow:
        _NAMES.execute(uow.session, {"p_idd": org.id})


# Longer than psycopg keeps converted (4,096 bytes).
_LONG = HotStatement(
    text("SELECT CAST(:p_n AS int) AS n, " + " + ".join(["0"] * 1500) + " AS zero")
)


def test_a_statement_past_psycopgs_cache_cannot_be_hot(runtime):
    """psycopg parses a query text longer than 4,096 bytes at every execution (the free-starts
    search: ~700 Python calls a refusal, #30, until it became a function): such a statement
    is refused before it is sent, as an expanding IN list is."""
    with runtime.uow() as uow, pytest.raises(TypeError, match="4,096 bytes"):
        _LONG.execute(uow.session, {"p_n": 1})
