"""What create_app builds once and request handlers use: engine, sessions, unit-of-work factory."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Flask, current_app
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from booking_service.config import Settings
from booking_service.persistence.org_cache import OrgCache
from booking_service.persistence.secrets_box import NO_KEY, SecretBox
from booking_service.persistence.unit_of_work import (
    AbstractUnitOfWork,
    ConnectionScope,
    SqlAlchemyUnitOfWork,
)
from booking_service.runtime.admission import Admission

KEY = "booking_service"


@dataclass
class Runtime:
    """Per-app singletons, stored in app.extensions."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker
    head_revision: str
    # Each organization's share of this process's request threads (MAX_CONCURRENT_PER_ORG).
    admission: Admission = field(default_factory=lambda: Admission(0))
    # Seals and opens stored secrets (SECRET_KEY); built once, shared by every unit of work.
    secrets: SecretBox = NO_KEY
    # Organizations and their catalogues as this worker last read them, confirmed by version
    # in each request (booking_service/persistence/org_cache.py); only webhook requests use it.
    org_cache: OrgCache = field(default_factory=OrgCache)

    def uow(self, source: str = "cli") -> AbstractUnitOfWork:
        """A new unit of work (one per use case); the bound method is the factory. `source`
        names the front end in the events its changes cause (cli, web)."""
        return SqlAlchemyUnitOfWork(self.session_factory, source=source, secrets=self.secrets)

    def connection_scope(
        self, source: str = "cli", commit_by: float | None = None, *, cached: bool = False
    ) -> ConnectionScope:
        """One connection shared by the units of work of one request (see ConnectionScope);
        `source` names the front end in the events its changes cause; past `commit_by`
        (time.monotonic()) its units roll back instead of committing. `cached`: its units
        use the organization cache (the caller confirms what it takes from it)."""
        return ConnectionScope(
            self.engine,
            self.session_factory,
            source,
            autocommit_reads=self.settings.db_pooler == "none",
            commit_by=commit_by,
            secrets=self.secrets,
            org_cache=self.org_cache if cached else None,
        )


def init_runtime(app: Flask, runtime: Runtime) -> None:
    """Attach the runtime to the app."""
    app.extensions[KEY] = runtime


def runtime() -> Runtime:
    """The current app's runtime."""
    return current_app.extensions[KEY]
