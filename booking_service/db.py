"""Database plumbing: the naming convention, the declarative Base, engine and session factories.

Engines are built by `create_app` (never at import time) so that a pre-forking server does not
share pooled connections between workers.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Engine, MetaData, Table, create_engine
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


def make_engine(settings: Settings) -> Engine:
    """Create the engine with per-session time budgets.

    statement_timeout and lock_timeout bound every query, so a stuck lock turns into a spoken
    error well inside VAPI's 20 s instead of a hang; pre-ping replaces connections that died
    while pooled (e.g. after a PostgreSQL restart).
    """
    options = (
        f"-c statement_timeout={settings.db_statement_timeout_ms} "
        f"-c lock_timeout={settings.db_lock_timeout_ms} "
        "-c timezone=UTC"
    )
    return create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        # Logged errors must not carry callers' phone numbers, emails or names.
        hide_parameters=True,
        connect_args={
            "connect_timeout": settings.db_connect_timeout_s,
            "options": options,
            "application_name": "booking_service",
        },
    )


def make_session_factory(engine: Engine) -> sessionmaker:
    """Sessions that keep loaded values after commit (answers are rendered after commit)."""
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
