"""The booking path's statements, run straight on the driver.

SQLAlchemy Core execution costs about 100 Python calls and 0.3 ms per statement on top of the
round trip (parameter processing, result metadata, row objects), which on the booking path is
as much as the statements themselves. The repositories keep writing their statements once,
in Core; a `HotStatement` compiles one for the psycopg dialect the first time it runs and then
executes the SQL on the session's own connection through a psycopg cursor: the same
transaction, savepoints and time budgets. What SQLAlchemy gave for free is kept:
- a driver error comes out as SQLAlchemy's exception (IntegrityError, OperationalError, ...)
  with the original attached, so the unit of work maps SQLSTATEs to domain errors as before;
- parameters never appear in it (hide_parameters: a caller's phone must not reach a log);
- a connection that died is invalidated, so the pool replaces it;
- `before_cursor_execute` listeners still see every statement (tests and `make profile`
  count them).
Only statements without expanding parameters (IN lists) can be hot; compiling says so.

Statements whose answer nobody reads (a SAVEPOINT, the transaction's time budgets behind a
pooler, a ROLLBACK TO SAVEPOINT) need not cost a round trip of their own: `defer` queues them
on the connection and the next statement sends them ahead of itself in one psycopg pipeline
(one Sync, one trip), in order, in the same transaction. A statement that does not go through
here (SQLAlchemy's own execution) sends what is queued first (`send_deferred`, a
`before_cursor_execute` listener every engine has, db.py). What must reach the server even when
no statement follows it (a ROLLBACK TO SAVEPOINT: committing without it would keep what its
block did) is queued `required`, and COMMIT sends it first (`send_required`, a `commit`
listener, db.py); the rest of a queue is transaction-local and is dropped with the
transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.pq import ExecStatus
from psycopg.rows import namedtuple_row
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, InvalidRequestError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

TUPLES_OK = ExecStatus.TUPLES_OK

# psycopg turns a query's %(name)s placeholders into PostgreSQL's $n once per query text and
# keeps the result, but only for texts up to 4,096 bytes (psycopg/_queries.py,
# MAX_CACHED_STATEMENT_LENGTH): a longer one is parsed again at every execution (the free-starts
# search, 6.3 KB, cost ~740 Python calls per refusal that way, #30). A statement that long
# belongs in a PL/pgSQL function, as that search now is; a hot statement is refused past it.
_PARSED_EVERY_TIME = 4096


# The connection's queued statements: a list of (SQL, parameters) in the pool record's info,
# which lives as long as the DBAPI connection and is shared by every Connection over it.
DEFERRED = "booking_service.deferred"
# Set while the queue holds a statement COMMIT must not go without (defer's `required`).
REQUIRED = "booking_service.deferred.required"


def defer(
    session: Session, sql: str, params: Mapping[str, Any] | None = None, *, required: bool = False
) -> tuple:
    """Queue `sql` to be sent just before the next statement of the session's transaction
    (beginning it as SQLAlchemy would); `required`: before COMMIT too, when no statement took
    it along. Returns a handle to `withdraw` it with."""
    entry = (sql, params)
    info = session.connection().info
    queued = info.get(DEFERRED)
    if queued is None:
        info[DEFERRED] = [entry]
    else:
        queued.append(entry)
    if required:
        info[REQUIRED] = True
    return info, entry


def withdraw(handle: tuple) -> bool:
    """Take back a deferred statement that has not been sent; False when it was sent (or its
    connection was invalidated, which empties the queue). It never touches the session, so it
    works on a connection that died too."""
    info, entry = handle
    queued = info.get(DEFERRED)
    if queued:
        for i, waiting in enumerate(queued):
            if waiting is entry:
                del queued[i]
                return True
    return False


def send_deferred(connection, cursor, *_args) -> None:
    """`before_cursor_execute` listener: what is queued goes first, for SQLAlchemy's own
    statements (a round trip each, as before they were deferred)."""
    queued = connection.info.get(DEFERRED)
    if queued:
        clear_deferred(connection.info)
        for sql, params in queued:
            cursor.connection.execute(sql, params)


def send_required(connection) -> None:
    """`commit` listener: a queued statement COMMIT must not go without is sent first (with
    whatever was queued before it, in order, by send_deferred ahead of a `SELECT 1`); a queue
    of transaction-local settings only is dropped with the transaction. A driver error here
    fails the commit, as SQLAlchemy's own execution reports it."""
    info = connection.info
    if info.pop(REQUIRED, False) and info.get(DEFERRED):
        connection.exec_driver_sql("SELECT 1")


def clear_deferred(info: dict) -> None:
    """Empty a connection's queue: what it held has just been taken to be sent, or a finished
    transaction queued it and never sent it (its transaction-local settings; anything required
    went before its COMMIT, or went with its ROLLBACK)."""
    info.pop(DEFERRED, None)
    info.pop(REQUIRED, None)


class HotResult:
    """The rows of one execution (all fetched), with the accessors repositories use."""

    __slots__ = ("_rows",)

    def __init__(self, rows: list):
        self._rows = rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if len(self._rows) != 1:
            raise RuntimeError(f"expected one row, got {len(self._rows)}")
        return self._rows[0]

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def all(self) -> list:
        return self._rows


class HotStatement:
    """A Core statement compiled once and run through the session's psycopg connection."""

    __slots__ = (
        "_defaults",
        "_make_row",
        "_processors",
        "_required",
        "_sql",
        "statement",
    )

    def __init__(self, statement: ClauseElement):
        self.statement = statement
        self._sql: str | None = None
        self._defaults: dict[str, Any] = {}
        self._processors: dict[str, Any] = {}
        self._required: frozenset[str] = frozenset()
        self._make_row: Any = None  # its rows' namedtuple maker, once a result has shown them

    def _compile(self, dialect: Dialect) -> str:
        compiled = self.statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        if compiled.post_compile_params or compiled.literal_execute_params:
            raise TypeError("a statement with expanding parameters cannot be hot")
        if compiled.positional or compiled.escaped_bind_names:
            # Processors are keyed by the unescaped names; SQLAlchemy escapes after processing.
            raise TypeError("a hot statement needs plain named parameters")
        self._defaults = dict(compiled.construct_params(_check=False) or {})
        self._processors = dict(compiled._bind_processors)
        # As SQLAlchemy would: a bind without a value must be given, never sent as NULL.
        self._required = frozenset(
            name for bind, name in compiled.bind_names.items() if bind.required
        )
        sql = compiled.string
        if len(sql.encode()) > _PARSED_EVERY_TIME:
            raise TypeError("a hot statement past 4,096 bytes is parsed at every execution")
        self._sql = sql
        return sql

    def _row_maker(self, cursor: psycopg.Cursor) -> Any:
        """psycopg's namedtuple rows, their class looked up once: one statement's SQL always
        returns the same columns, and psycopg would read their names afresh every time."""
        maker = self._make_row
        if maker is None:
            maker = namedtuple_row(cursor)
            result = cursor.pgresult
            if result is not None and result.status == TUPLES_OK:
                self._make_row = maker
        return maker

    def execute(self, session: Session, params: Mapping[str, Any] | None = None) -> HotResult:
        """Run in the session's transaction (beginning it as SQLAlchemy would)."""
        given = params or {}
        connection = session.connection()  # begins the transaction: time budgets, isolation
        sql = self._sql or self._compile(connection.dialect)
        missing = self._required.difference(given)
        if missing:
            raise InvalidRequestError(f"a value is required for {', '.join(sorted(missing))}")
        values = {**self._defaults, **given}
        for name, process in self._processors.items():
            values[name] = process(values[name])
        dbapi = connection.connection.driver_connection
        assert isinstance(dbapi, psycopg.Connection)
        info = connection.info
        queued = info.get(DEFERRED)
        cursor = None
        try:
            cursor = dbapi.cursor(row_factory=self._row_maker)
            listeners = connection.dispatch.before_cursor_execute
            if queued:
                clear_deferred(info)
                for listener in listeners:
                    for early, early_params in queued:
                        listener(connection, cursor, early, early_params, None, False)
                    listener(connection, cursor, sql, values, None, False)
                # One trip: what was queued, then this statement, then one Sync (the
                # pipeline's exit), which also collects the results (errors included).
                with dbapi.pipeline():
                    for early, early_params in queued:
                        dbapi.execute(early, early_params)
                    cursor.execute(sql, values)
            else:
                for listener in listeners:
                    listener(connection, cursor, sql, values, None, False)
                cursor.execute(sql, values)
            # The result's status, not `description`: that builds a Column object per column
            # on every call (about 60 Python calls per booking), only to be thrown away.
            result = cursor.pgresult
            rows = cursor.fetchall() if result is not None and result.status == TUPLES_OK else []
            return HotResult(rows)
        except psycopg.Error as exc:
            dialect = connection.dialect
            gone = dialect.is_disconnect(exc, dbapi, cursor)  # type: ignore[arg-type]
            wrapped = DBAPIError.instance(
                sql,
                None,
                exc,
                psycopg.Error,
                hide_parameters=True,
                connection_invalidated=gone,
                dialect=dialect,
            )
            if gone:
                connection.invalidate(exc)
            raise wrapped from exc
        finally:
            if cursor is not None:
                cursor.close()
