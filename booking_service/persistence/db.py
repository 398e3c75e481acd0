"""Database plumbing: the naming convention, the declarative Base, engine and session factories.

Engines are built by `create_app` (never at import time) so that a pre-forking server does not
share pooled connections between workers.
"""

from __future__ import annotations

import select
from typing import cast

import psycopg
from psycopg import pq
from sqlalchemy import Engine, MetaData, Table, create_engine, event, exc
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from booking_service.config import Settings
from booking_service.persistence.repositories.driver import (
    DEFERRED,
    clear_deferred,
    send_deferred,
    send_required,
)

# Stable, predictable names from the first migration on: upserts and the schema check name
# constraints, and alembic autogenerate emits op.f(...) with these.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base whose metadata carries the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def table(model: type[Base]) -> Table:
    """The model's Table, for Core statements (SQLAlchemy types `__table__` as any FromClause,
    though a declarative model's is always a Table)."""
    return cast(Table, model.__table__)


_IN_TRANSACTION = (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR)


def rollback_keeping_statements(dbapi_connection: psycopg.Connection) -> None:
    """ROLLBACK the connection's transaction, leaving the statements psycopg prepared on it.

    psycopg's `rollback()` forgets every statement it prepared and sends DEALLOCATE ALL,
    since a rolled-back transaction may have made objects they name. The app's connections
    never run DDL, and the server keeps prepared statements across a rollback. Without this,
    every unit of work left without commit (an availability check reads and rolls back) threw
    the hot statements away, and the connection's next five executions of each were parsed
    and planned afresh: a booking after an availability check cost PostgreSQL as much as one
    behind the pooler (#30). The ROLLBACK goes through libpq (PQexec, GIL released), which
    psycopg reads its transaction status from, so its next statement begins a transaction.
    Anything unusual (a pipeline open, an error) takes psycopg's own rollback, cache and all.
    """
    pgconn = dbapi_connection.pgconn
    if (
        pgconn.transaction_status in _IN_TRANSACTION
        and pgconn.pipeline_status == pq.PipelineStatus.OFF
    ):
        try:
            result = pgconn.exec_(b"ROLLBACK")
        except psycopg.Error:
            result = None
        if result is not None and result.status == pq.ExecStatus.COMMAND_OK:
            return
    # Idle (nothing to do), or a broken connection: psycopg raises what SQLAlchemy classifies.
    dbapi_connection.rollback()


def _closed_by_server(dbapi_connection) -> bool:
    """True when the server has given up on this idle, pooled connection.

    An idle connection in the pool has nothing to read: the last answer was read in full.
    When the server ends it (shutdown or restart, pg_terminate_backend, a pooler's timeout)
    it sends its goodbye and closes the socket, which the kernel shows as readable (or hung
    up) at once; a poll without waiting sees that with no round trip. Whatever else could
    arrive unasked on an idle connection (a parameter change) only costs a reconnect.
    A peer gone without closing the socket is found by TCP keepalives once the connection
    has idled a while (`make_engine`); before that, the first statement meets it and the
    request is answered as an outage (a pre-ping would have spent its round trip on it).
    """
    if dbapi_connection.closed:
        return True
    if dbapi_connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        # Not idle: a statement or pipeline cut off by a failure (a restart mid-flight) left
        # answers unread, and a reset could not run. It cannot serve another request.
        return True
    try:
        poller = select.poll()
        poller.register(dbapi_connection.fileno(), select.POLLIN)  # hang-ups come unasked
        return bool(poller.poll(0))
    except (OSError, ValueError, psycopg.Error):  # no usable socket any more
        return True


def make_engine(settings: Settings, url: str | None = None) -> Engine:
    """Create the engine with time budgets on every statement.

    statement_timeout and lock_timeout bound every query, so a stuck lock turns into a spoken
    error well inside VAPI's 20 s instead of a hang; a connection the server closed while it
    was pooled (a PostgreSQL restart, a terminated backend, a pooler's idle timeout) is
    replaced when it is checked out (`_closed_by_server`).

    Directly connected (DB_POOLER=none) the budgets are session settings sent once at connect.
    Behind a transaction-mode pooler (DB_POOLER=transaction) a server connection serves other
    clients between our transactions, so nothing may live in the session: no startup options
    (PgBouncer refuses them), no prepared statements (they would meet other clients' server
    connections), and the budgets are set for each transaction with set_config(..., true),
    sent in the same trip as the transaction's first statement (driver.defer).
    """
    connect_args: dict = {
        "connect_timeout": settings.db_connect_timeout_s,
        "application_name": "booking_service",
        # A database host that vanished (failover, a NAT or load balancer that forgot the
        # flow) sends no goodbye; keepalives make the kernel notice within about a minute of
        # idling, so the checkout's poll sees it instead of a caller's first statement.
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    pooled = settings.db_pooler == "transaction"
    if pooled:
        connect_args["prepare_threshold"] = None
    else:
        connect_args["options"] = (
            f"-c statement_timeout={settings.db_statement_timeout_ms} "
            f"-c lock_timeout={settings.db_lock_timeout_ms} "
            "-c timezone=UTC"
        )
    engine = create_engine(
        url or settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        # Not pool_pre_ping: its SELECT 1 is a round trip per checkout (one in seven of a
        # booking's, #17). The checkout listener below finds a closed connection locally.
        pool_pre_ping=False,
        pool_recycle=1800,
        # Logged errors must not carry callers' phone numbers, emails or names.
        hide_parameters=True,
        connect_args=connect_args,
    )

    if not pooled:
        # Prepared statements are used only when directly connected.
        engine.dialect.do_rollback = rollback_keeping_statements  # type: ignore[method-assign, assignment]

    @event.listens_for(engine, "connect")
    def _mark_new(_dbapi_connection, record):
        record.info["new"] = True

    @event.listens_for(engine, "checkout")
    def _replace_if_closed(dbapi_connection, record, _proxy):
        # A connection made for this very checkout was just heard from; checking it could
        # only turn a connection the server drops at once into an error of the wrong kind.
        if record.info.pop("new", False):
            return
        if _closed_by_server(dbapi_connection):
            # The pool closes this connection and connects its slot afresh.
            raise exc.DisconnectionError("the server closed a pooled connection")

    # Statements deferred to travel with the next one (savepoints, the budgets below) go
    # first when that next one is SQLAlchemy's rather than a hot statement.
    event.listen(engine, "before_cursor_execute", send_deferred)
    # ... and what COMMIT must not go without (a ROLLBACK TO SAVEPOINT) goes before it.
    event.listen(engine, "commit", send_required)

    if pooled:
        budgets = (
            "SELECT set_config('statement_timeout', %(statement)s, true), "
            "set_config('lock_timeout', %(lock)s, true), "
            "set_config('timezone', 'UTC', true)",
            {
                "statement": str(settings.db_statement_timeout_ms),
                "lock": str(settings.db_lock_timeout_ms),
            },
        )

        @event.listens_for(engine, "begin")
        def _transaction_budgets(connection):
            # The transaction's first statement, SET LOCAL semantics (is_local = true): its
            # own statement, so that it bounds the next one too, but in that one's trip (a
            # pipeline, driver.HotStatement) rather than a trip of its own.
            clear_deferred(connection.info)
            connection.info[DEFERRED] = [budgets]

    else:

        @event.listens_for(engine, "begin")
        def _nothing_left_over(connection):
            # What the last transaction queued and never sent (driver.defer: anything not
            # `required`) was transaction-local: it must not ride into this one.
            clear_deferred(connection.info)

    return engine


def make_session_factory(engine: Engine) -> sessionmaker:
    """Sessions that keep loaded values after commit (answers are rendered after commit)."""
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
