"""The unit of work: owns one transaction per use case.

`with uow:` opens a session; leaving the block rolls back whatever was not committed and closes
the session; `uow.commit()` is explicit. Views, repositories and models never commit.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from booking_service import repositories
from booking_service.errors import (
    DatabaseUnavailable,
    ExclusionViolation,
    UniqueViolation,
)

UNIQUE_VIOLATION = "23505"
EXCLUSION_VIOLATION = "23P01"
# Connection failures, timeouts (57014 query_canceled, 55P03 lock_not_available) and
# "the server is shutting down" (57P01..57P03) all mean: try again later.
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "57", "55P03", "53")
# A schema that is not what the code needs (missing table, constraint or privilege) is an
# outage for the caller, not a bug in the request: 42P01, 42704, 42501.
_BROKEN_SCHEMA_SQLSTATES = ("42P01", "42704", "42501", "42703")


class AbstractUnitOfWork(abc.ABC):
    """What services see: repositories, commit, and savepoints that map conflicts to errors."""

    organizations: repositories.OrganizationRepository
    contacts: repositories.ContactRepository
    appointments: repositories.AppointmentRepository
    tool_calls: repositories.ToolCallLedger
    schedule: repositories.ScheduleRepository
    adoption: repositories.AdoptionRepository

    def __enter__(self) -> AbstractUnitOfWork:
        return self

    def __exit__(self, *exc_info) -> None:
        self.rollback()

    @abc.abstractmethod
    def commit(self) -> None:
        """Make the work durable."""

    @abc.abstractmethod
    def rollback(self) -> None:
        """Discard uncommitted work."""

    @abc.abstractmethod
    def savepoint(self) -> contextlib.AbstractContextManager[None]:
        """A SAVEPOINT; a unique or exclusion violation inside rolls back to it and raises
        UniqueViolation or ExclusionViolation."""


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | PoolTimeout):
        return True
    if isinstance(exc, ProgrammingError):
        return getattr(exc.orig, "sqlstate", None) in _BROKEN_SCHEMA_SQLSTATES
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        return sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES)
    return False


class SqlAlchemyUnitOfWork(AbstractUnitOfWork):
    """Unit of work over a SQLAlchemy session from the app's sessionmaker."""

    def __init__(self, session_factory: sessionmaker):
        self._session_factory = session_factory
        self.session: Session | None = None

    def __enter__(self) -> SqlAlchemyUnitOfWork:
        self.session = self._session_factory()
        self.organizations = repositories.OrganizationRepository(self.session)
        self.contacts = repositories.ContactRepository(self.session)
        self.appointments = repositories.AppointmentRepository(self.session)
        self.tool_calls = repositories.ToolCallLedger(self.session)
        self.schedule = repositories.ScheduleRepository(self.session)
        self.adoption = repositories.AdoptionRepository(self.session)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            super().__exit__(exc_type, exc, tb)
        except DBAPIError:
            # Rolling back on a dead connection fails too. Either the block failed (its own
            # error is what matters) or it finished, and whatever it committed stays committed:
            # reporting "unavailable" then would contradict a booking that exists.
            pass
        finally:
            self.session.close()
            self.session = None
        if exc is not None and _is_unavailable(exc):
            raise DatabaseUnavailable(type(exc).__name__) from exc

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        try:
            with self.session.begin_nested():
                yield
        except IntegrityError as exc:
            sqlstate = getattr(exc.orig, "sqlstate", None)
            constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
            if sqlstate == UNIQUE_VIOLATION:
                raise UniqueViolation(constraint) from exc
            if sqlstate == EXCLUSION_VIOLATION:
                raise ExclusionViolation(constraint) from exc
            raise
