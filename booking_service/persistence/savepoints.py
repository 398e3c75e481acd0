"""Savepoints for the unit of work, sent straight to the driver, and the constraint
violations that roll back to one, raised as the domain's UniqueViolation or ExclusionViolation.

SAVEPOINT and, on an error, ROLLBACK TO SAVEPOINT go straight to the driver, each in the trip
of the statement after it (driver.defer; a ROLLBACK TO that nothing follows goes before
COMMIT); never RELEASE:
COMMIT releases it with the transaction, and a savepoint left open costs PostgreSQL nothing
more than a released one (its subtransaction id stays in the transaction either way). Names go
by nesting depth: a later savepoint at the same depth shadows the name, and ROLLBACK TO takes
the most recent one of a name, which is always the innermost open one. SQLAlchemy's
begin_nested() cost a round trip (the RELEASE) and ~400 Python calls more per use (#17);
nothing here uses ORM objects whose state a savepoint would have to track.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from booking_service.domain.errors import ExclusionViolation, UniqueViolation
from booking_service.persistence.repositories.driver import defer, withdraw

UNIQUE_VIOLATION = "23505"
EXCLUSION_VIOLATION = "23P01"


@contextlib.contextmanager
def savepoint(session: Session, depth: int) -> Iterator[None]:
    """A SAVEPOINT at nesting `depth`; a unique or exclusion violation inside rolls back to it
    and raises UniqueViolation or ExclusionViolation."""
    take, undo = _savepoint_statements(depth)
    try:
        # Sent with the block's first statement, in the same trip (driver.defer); a block
        # that sends none needs no savepoint and leaves none.
        entry = defer(session, take)
        try:
            yield
        except BaseException:
            if not withdraw(entry):
                # The ROLLBACK TO goes with the transaction's next statement, before it (a
                # refusal's is its answer's UPDATE: one round trip fewer, #30), or before
                # COMMIT if none follows (driver.send_required). On a dead connection the
                # session refuses even this (SQLAlchemy wants a rollback first); the original
                # error is the one to raise, and leaving the unit of work rolls back the rest.
                with contextlib.suppress(SQLAlchemyError):
                    defer(session, undo, required=True)
            raise
        withdraw(entry)
    except IntegrityError as exc:
        sqlstate = getattr(exc.orig, "sqlstate", None)
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
        if sqlstate == UNIQUE_VIOLATION:
            raise UniqueViolation(constraint) from exc
        if sqlstate == EXCLUSION_VIOLATION:
            raise ExclusionViolation(constraint) from exc
        raise


_SAVEPOINTS: dict[int, tuple[str, str]] = {}


def _savepoint_statements(depth: int) -> tuple[str, str]:
    """SAVEPOINT and ROLLBACK TO SAVEPOINT for one nesting depth (built once per depth)."""
    found = _SAVEPOINTS.get(depth)
    if found is None:
        name = f"uow_{depth}"
        found = _SAVEPOINTS[depth] = (f"SAVEPOINT {name}", f"ROLLBACK TO SAVEPOINT {name}")
    return found
