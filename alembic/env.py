"""Alembic environment: the app's metadata, and the database URL from the app's config.

Tests and tools may pass `config.attributes["database_url"]` instead of the environment.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from dotenv import load_dotenv
from sqlalchemy import create_engine, text

from booking_service.config import ConfigError, Settings
from booking_service.persistence import models  # noqa: F401 - registers the tables on Base.metadata
from booking_service.persistence.db import Base

config = context.config
if config.config_file_name is not None and not config.attributes.get("skip_logging_config"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata

# Migrations wait at most this long for a lock instead of queueing behind live traffic
# (and making every request queue behind them).
LOCK_TIMEOUT = "5s"


def _database_url() -> str:
    url = config.attributes.get("database_url")
    if url:
        return url
    # Migrations take locks and set session options (lock_timeout below): past a
    # transaction-mode pooler that setting would stay on a server connection other clients
    # get, so they go straight to PostgreSQL, and refuse to run without a way there.
    # Like the flask CLI, read the .env that `make run` writes for its project-local cluster
    # (variables already set win), so `alembic ...` works in a second terminal too.
    load_dotenv(override=False)
    try:
        return Settings.from_env().validate().session_url()
    except ConfigError as exc:
        raise SystemExit(f"alembic: {exc}") from None


def run_migrations_offline() -> None:
    """Emit SQL to stdout (`alembic upgrade head --sql`)."""
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations against the live database."""
    engine = create_engine(_database_url())
    try:
        with engine.connect() as connection:
            connection.execute(text(f"SET lock_timeout = '{LOCK_TIMEOUT}'"))
            connection.commit()
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                compare_server_default=True,
                transaction_per_migration=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
