"""Database plumbing: the naming convention, the declarative Base, engine and session factories.

Engines are built by `create_app` (never at import time) so that a pre-forking server does not
share pooled connections between workers.
"""

from __future__ import annotations

import select
from typing import cast

from sqlalchemy import Engine, MetaData, Table, create_engine, event, exc
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from booking_service.config import Settings

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


def _closed_by_server(dbapi_connection) -> bool:
    """True when the server has given up on this idle, pooled connection.

    An idle connection in the pool has nothing to read: the last answer was read in full.
    When the server ends it (shutdown or restart, pg_terminate_backend, a pooler's timeout)
    it sends its goodbye and closes the socket, which the kernel shows as readable (or hung
    up) at once; a poll without waiting sees that with no round trip. Whatever else could
    arrive unasked on an idle connection (a parameter change) only costs a reconnect.
    A server gone without closing the socket (a cut cable) is met by the first statement,
    as it was by a pre-ping, and answered as an outage.
    """
    if dbapi_connection.closed:
        return True
    try:
        poller = select.poll()
        poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    except (OSError, ValueError):  # no usable socket any more
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
    connections), and the budgets are set for each transaction with set_config(..., true) in
    its first statement.
    """
    connect_args: dict = {
        "connect_timeout": settings.db_connect_timeout_s,
        "application_name": "booking_service",
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

    @event.listens_for(engine, "checkout")
    def _replace_if_closed(dbapi_connection, _record, _proxy):
        if _closed_by_server(dbapi_connection):
            # The pool drops this connection and checks out another (three tries).
            raise exc.DisconnectionError("the server closed a pooled connection")

    if pooled:
        budgets = {
            "statement": str(settings.db_statement_timeout_ms),
            "lock": str(settings.db_lock_timeout_ms),
        }

        @event.listens_for(engine, "begin")
        def _transaction_budgets(connection):
            # The first statement of the transaction; SET LOCAL semantics (is_local = true).
            connection.exec_driver_sql(
                "SELECT set_config('statement_timeout', %(statement)s, true), "
                "set_config('lock_timeout', %(lock)s, true), "
                "set_config('timezone', 'UTC', true)",
                budgets,
            )

    return engine


def make_session_factory(engine: Engine) -> sessionmaker:
    """Sessions that keep loaded values after commit (answers are rendered after commit)."""
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
