"""The unit of work: owns one transaction per use case.

`with uow:` opens a session; leaving the block rolls back whatever was not committed and closes
the session; `uow.commit()` is explicit. Views, repositories and models never commit.
"""

from __future__ import annotations

import abc
import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from booking_service.domain import outbox
from booking_service.domain.errors import DatabaseUnavailable, OutOfTime
from booking_service.domain.events import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentEvent,
    AppointmentRescheduled,
)
from booking_service.persistence.message_planning import plan_messages
from booking_service.persistence.org_cache import OrgCache
from booking_service.persistence.repositories.adoption import AdoptionRepository
from booking_service.persistence.repositories.api_keys import ApiKeyRepository
from booking_service.persistence.repositories.api_requests import ApiRequestRepository
from booking_service.persistence.repositories.appointments import AppointmentRepository
from booking_service.persistence.repositories.calendars import CalendarRepository
from booking_service.persistence.repositories.call_reports import CallReportRepository
from booking_service.persistence.repositories.contacts import ContactRepository
from booking_service.persistence.repositories.counters import CounterRepository
from booking_service.persistence.repositories.diary import DiaryRepository
from booking_service.persistence.repositories.ledger import ToolCallLedger
from booking_service.persistence.repositories.notifications import (
    NotificationRepository,
)
from booking_service.persistence.repositories.organizations import OrganizationRepository
from booking_service.persistence.repositories.outbox import OutboxRepository
from booking_service.persistence.repositories.schedule import ScheduleRepository
from booking_service.persistence.repositories.users import UserRepository
from booking_service.persistence.repositories.voice_platforms import VoicePlatformRepository
from booking_service.persistence.repositories.waitlist import WaitlistRepository
from booking_service.persistence.savepoints import savepoint
from booking_service.persistence.secrets_box import NO_KEY, SecretBox

# Connection failures, timeouts (57014 query_canceled, 55P03 lock_not_available) and
# "the server is shutting down" (57P01..57P03) all mean: try again later.
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "57", "55P03", "53")
# A schema that is not what the code needs (missing table, constraint or privilege) is an
# outage for the caller, not a bug in the request: 42P01, 42704, 42501.
_BROKEN_SCHEMA_SQLSTATES = ("42P01", "42704", "42501", "42703")


class AbstractUnitOfWork(abc.ABC):
    """What use cases see: repositories, commit, savepoints that map conflicts to errors, and
    the domain events of the transaction.

    The transaction rule: a use case takes an unentered unit of work, opens it (`with uow:`)
    and commits; a step takes an entered one and never commits. Leaving the block rolls back
    whatever was not committed.
    """

    organizations: OrganizationRepository
    contacts: ContactRepository
    appointments: AppointmentRepository
    tool_calls: ToolCallLedger
    schedule: ScheduleRepository
    adoption: AdoptionRepository
    counters: CounterRepository
    outbox: OutboxRepository
    notifications: NotificationRepository
    calendars: CalendarRepository
    users: UserRepository
    diary: DiaryRepository
    waitlist: WaitlistRepository
    api_keys: ApiKeyRepository
    api_requests: ApiRequestRepository
    voice_platforms: VoicePlatformRepository
    call_reports: CallReportRepository

    # What the worker keeps of organizations between requests (org_cache); None: read each
    # time (the CLI, the web page, the worker).
    org_cache: OrgCache | None = None

    def __init__(
        self,
        source: str = "cli",
        commit_by: float | None = None,
        secrets: SecretBox = NO_KEY,
    ) -> None:
        # Which front end acts (the `source` of the events it causes): "vapi", "cli", ...
        self.source = source
        # Seals and opens the secrets stored sealed (SECRET_KEY).
        self.secrets = secrets
        # time.monotonic() after which nothing commits: a webhook request whose proxy has
        # answered 504 must leave no booking behind (None: no limit).
        self.commit_by = commit_by
        self._events: list[AppointmentEvent] = []
        # The events of the last transaction that committed (what the outbox received).
        self.committed_events: list[AppointmentEvent] = []

    def __enter__(self) -> AbstractUnitOfWork:
        self._events = []
        self.committed_events = []
        return self

    def __exit__(self, *exc_info) -> None:
        self.rollback()

    def add_event(self, event: AppointmentEvent) -> None:
        """Record that something happened in this transaction; it is published with the
        commit and dropped by a rollback."""
        self._events.append(event)

    def commit(self) -> None:
        """Make the work durable, with its events persisted in the same transaction.

        Past `commit_by` (checked after the events are written, right before COMMIT) it rolls
        back instead and raises OutOfTime."""
        events, self._events = self._events, []
        self._persist_events(events)
        if self.commit_by is not None and time.monotonic() > self.commit_by:
            self.rollback()
            raise OutOfTime()
        self._commit()
        self.committed_events.extend(events)

    def rollback(self) -> None:
        """Discard uncommitted work and its events."""
        self._events = []
        self._rollback()

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """A SAVEPOINT; a unique or exclusion violation inside rolls back to it and raises
        UniqueViolation or ExclusionViolation. Events added inside are dropped with it."""
        mark = len(self._events)
        try:
            with self._savepoint():
                yield
        except BaseException:
            del self._events[mark:]
            raise

    def _persist_events(self, events: list[AppointmentEvent]) -> None:  # noqa: B027
        """Write the transaction's events before it commits (the outbox's place)."""

    @abc.abstractmethod
    def _commit(self) -> None:
        """Make the work durable."""

    @abc.abstractmethod
    def _rollback(self) -> None:
        """Discard uncommitted work."""

    @abc.abstractmethod
    def _savepoint(self) -> contextlib.AbstractContextManager[None]:
        """The database's SAVEPOINT, mapping constraint violations to domain errors."""


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


def _free_for_waitlist(waitlist: WaitlistRepository, event: AppointmentEvent) -> None:
    """A cancellation or a move frees a time: recorded for the worker to offer to whoever
    waits for it (#29), in the change's transaction (a rollback frees nothing)."""
    if isinstance(event, AppointmentCancelled):
        waitlist.add_opening(
            event.org_id, event.appointment_id, event.resource, event.starts_at, event.ends_at
        )
    elif isinstance(event, AppointmentRescheduled) and event.previous_start is not None:
        if event.previous_start == event.starts_at and not event.previous_resource:
            return
        waitlist.add_opening(
            event.org_id,
            event.appointment_id,
            event.previous_resource or event.resource,
            event.previous_start,
            event.previous_start + (event.ends_at - event.starts_at),
        )


class SqlAlchemyUnitOfWork(AbstractUnitOfWork):
    """Unit of work over a SQLAlchemy session from the app's sessionmaker.

    By default each unit checks a connection out of the pool; `connect` instead supplies the
    connection of a ConnectionScope, shared by the units of one request.
    """

    def __init__(
        self,
        session_factory: sessionmaker,
        connect: Callable[[], Connection] | None = None,
        source: str = "cli",
        commit_by: float | None = None,
        secrets: SecretBox = NO_KEY,
        org_cache: OrgCache | None = None,
    ):
        super().__init__(source, commit_by, secrets)
        self.org_cache = org_cache
        self._depth = 0  # how many savepoints are open
        self._session_factory = session_factory
        self._connect = connect
        self.session: Session | None = None

    def __enter__(self) -> SqlAlchemyUnitOfWork:
        super().__enter__()
        self._depth = 0
        if self._connect is None:
            self.session = self._session_factory()
        else:
            try:
                connection = self._connect()
            except Exception as exc:
                # Checking out happens here, outside the block __exit__ guards: a refused
                # connection or a pool timeout is an outage like one inside the block.
                if _is_unavailable(exc):
                    raise DatabaseUnavailable(type(exc).__name__) from exc
                raise
            self.session = self._session_factory(bind=connection)
        self.organizations = OrganizationRepository(self.session)
        self.contacts = ContactRepository(self.session)
        self.appointments = AppointmentRepository(self.session)
        self.tool_calls = ToolCallLedger(self.session)
        self.schedule = ScheduleRepository(self.session)
        self.adoption = AdoptionRepository(self.session)
        self.outbox = OutboxRepository(self.session)
        self.notifications = NotificationRepository(self.session)
        self.calendars = CalendarRepository(self.session)
        self.users = UserRepository(self.session)
        self.diary = DiaryRepository(self.session)
        self.voice_platforms = VoicePlatformRepository(self.session)
        self.call_reports = CallReportRepository(self.session)
        self.counters = CounterRepository(self.session)
        self.waitlist = WaitlistRepository(self.session)
        self.api_keys = ApiKeyRepository(self.session)
        self.api_requests = ApiRequestRepository(self.session)
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
            self._open.close()
            self.session = None
        if exc is not None and _is_unavailable(exc):
            raise DatabaseUnavailable(type(exc).__name__) from exc

    @property
    def _open(self) -> Session:
        if self.session is None:
            raise RuntimeError("the unit of work is not open (use `with uow:`)")
        return self.session

    def _persist_events(self, events: list[AppointmentEvent]) -> None:
        # In the same transaction as the change: the event, and the messages it causes, exist
        # if and only if it committed.
        at = datetime.now(UTC)
        for event in events:
            audience = self.outbox.add_event(
                org_id=event.org_id,
                contact_id=event.contact_id,
                appointment_id=event.appointment_id,
                event_id=outbox.new_event_id(),
                event_type=outbox.event_type(event),
                payload=outbox.payload(event, source=self.source, at=at),
                # A linked calendar shows booked, moved and cancelled; a marked outcome
                # leaves the event as it is.
                calendar=isinstance(
                    event, AppointmentBooked | AppointmentRescheduled | AppointmentCancelled
                ),
            )
            plan_messages(self.notifications, event, audience, at)
            _free_for_waitlist(self.waitlist, event)

    def _commit(self) -> None:
        self._open.commit()

    def _rollback(self) -> None:
        self._open.rollback()

    @contextlib.contextmanager
    def _savepoint(self) -> Iterator[None]:
        # Sent straight to the driver, named by nesting depth (savepoints.py).
        self._depth += 1
        try:
            with savepoint(self._open, self._depth):
                yield
        finally:
            self._depth -= 1


class ConnectionScope:
    """One pooled connection for all the units of work of one request.

    A webhook request authenticates, then answers each tool call in a transaction of its own.
    Checking a connection out for each would pay the pool's bookkeeping (and its check for a
    connection the server closed, db._closed_by_server) every time; sharing one keeps one
    check-out per request.

    `reader()` units run in autocommit: a single lookup (authentication) needs no transaction,
    so it costs one round trip instead of BEGIN, SELECT and ROLLBACK. `uow()` units run in the
    engine's default isolation level, each in its own transaction, exactly as unshared ones.
    A connection that died during one unit is replaced for the next.
    """

    def __init__(
        self,
        engine: Engine,
        session_factory: sessionmaker,
        source: str = "cli",
        *,
        autocommit_reads: bool = True,
        commit_by: float | None = None,
        secrets: SecretBox = NO_KEY,
        org_cache: OrgCache | None = None,
    ):
        self._org_cache = org_cache
        self._engine = engine
        self._commit_by = commit_by
        self._secrets = secrets
        self._session_factory = session_factory
        self._connection: Connection | None = None
        self._source = source
        # Behind a transaction-mode pooler the time budgets are set per transaction, so a
        # lookup must run in one to be bounded by them.
        self._autocommit_reads = autocommit_reads

    def uow(self) -> SqlAlchemyUnitOfWork:
        """A unit of work (one transaction) on the shared connection."""
        return SqlAlchemyUnitOfWork(
            self._session_factory,
            lambda: self._checked_out(False),
            source=self._source,
            commit_by=self._commit_by,
            secrets=self._secrets,
            org_cache=self._org_cache,
        )

    def reader(self) -> SqlAlchemyUnitOfWork:
        """A unit of work in autocommit, for lookups only: it must not write."""
        return SqlAlchemyUnitOfWork(
            self._session_factory,
            lambda: self._checked_out(True),
            secrets=self._secrets,
            org_cache=self._org_cache,
        )

    @property
    def org_cache(self) -> OrgCache | None:
        """The cache its units of work share (None: none)."""
        return self._org_cache

    def _checked_out(self, autocommit: bool) -> Connection:
        connection = self._connection
        if connection is None or connection.closed or connection.invalidated:
            if connection is not None:
                connection.close()
            connection = self._connection = self._engine.connect()
        default = connection.default_isolation_level
        level = "AUTOCOMMIT" if autocommit and self._autocommit_reads else default
        # A connection with no level of its own is at the default: the engine sets none, and
        # the pool resets a level set here when the connection goes back. Setting the default
        # anyway cost every request a set and a reset (about 2% of a booking's Python, #30).
        if connection.get_execution_options().get("isolation_level", default) != level:
            # Client-side with psycopg (it only changes how the next transaction begins).
            connection.execution_options(isolation_level=level)
        return connection

    def close(self) -> None:
        """Return the connection to the pool (its isolation level is reset there)."""
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(DBAPIError):
                connection.close()

    def __enter__(self) -> ConnectionScope:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
