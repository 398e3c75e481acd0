"""Domain errors shared by use cases and the front ends (no SQLAlchemy in here)."""

from __future__ import annotations


class ToolError(Exception):
    """Something the caller must fix (or that we must tell them); `message` is speakable."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class DatabaseUnavailable(Exception):
    """The database could not be reached or did not answer within its time budget."""


class LockTimeout(Exception):
    """A statement waited longer than lock_timeout (SQLSTATE 55P03) for another transaction."""


class UniqueViolation(Exception):
    """A unique constraint refused a row (SQLSTATE 23505) inside a savepoint."""

    def __init__(self, constraint: str | None):
        super().__init__(constraint or "unique violation")
        self.constraint = constraint


class ExclusionViolation(Exception):
    """An exclusion constraint refused a row (SQLSTATE 23P01): the time is already taken."""

    def __init__(self, constraint: str | None):
        super().__init__(constraint or "exclusion violation")
        self.constraint = constraint
