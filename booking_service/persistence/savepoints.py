"""Savepoints for the unit of work, sent straight to the driver, and the constraint
violations that roll back to one, raised as the domain's UniqueViolation or ExclusionViolation.

SAVEPOINT and, on an error, ROLLBACK TO SAVEPOINT go straight to the driver; never RELEASE:
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

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from booking_service.domain.errors import ExclusionViolation, UniqueViolation
from booking_service.persistence.repositories.driver import HotStatement, defer, withdraw

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
            # On a dead connection this fails too (a driver error, or SQLAlchemy refusing
            # an invalidated connection until rollback); the original error is the one to
            # raise, and leaving the unit of work rolls back whatever is left.
            if not withdraw(entry):
                with contextlib.suppress(SQLAlchemyError):
                    undo.execute(session)
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


_SAVEPOINTS: dict[int, tuple[str, HotStatement]] = {}


def _savepoint_statements(depth: int) -> tuple[str, HotStatement]:
    """SAVEPOINT and ROLLBACK TO SAVEPOINT for one nesting depth (built once per depth)."""
    found = _SAVEPOINTS.get(depth)
    if found is None:
        name = f"uow_{depth}"
        found = _SAVEPOINTS[depth] = (
            f"SAVEPOINT {name}",
            HotStatement(text(f"ROLLBACK TO SAVEPOINT {name}")),
        )
    return found
