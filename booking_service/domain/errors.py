"""Errors that use cases raise and front ends catch (no SQLAlchemy, no wording in here).

Two kinds:
- infrastructure: the database is unavailable, a lock wait timed out, a constraint refused a
  row inside a savepoint;
- refusals: the business rules say no. Each carries the facts (which start, which
  alternatives, which limit) and no sentence: the VAPI layer words them
  (`vapi/refusals.py`), a web page or a CLI would word them its own way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from booking_service.domain.slots import Slot


class InputError(ValueError):
    """Input a use case cannot take, as data: the `field` (the use case's own name for it, or
    None when no one field is at fault), the `problem` in words that name no front end's
    control ("must be between 1 and 10080"), and the `allowed` values when they are few.

    Each front end words it: the CLI names its flag (cli/common.py), the web page names and
    marks its form field (web/wording.py), the assistant speaks a sentence. `str()` is the
    problem alone."""

    def __init__(self, field: str | None, problem: str | None = None, allowed=()):
        if problem is None:  # InputError("the whole sentence"): no one field at fault
            field, problem = None, field or ""
        super().__init__(problem)
        self.field = field
        self.problem = problem
        self.allowed = tuple(allowed)


class DatabaseUnavailable(Exception):
    """The database could not be reached or did not answer within its time budget."""


class OutOfTime(Exception):
    """The request's time is spent: its transaction was rolled back instead of committing after
    the proxy may already have given up on it (the caller would hear nothing, yet the change
    would stand)."""


class StaleOrganization(Exception):
    """The organization a request was answered with came from this worker's cache and has
    changed since (a rotated secret, new hours, a new resource): the request's transaction is
    rolled back and the request runs again with the organization read afresh."""

    def __init__(self, org_id: int):
        super().__init__(f"organization {org_id} changed since it was cached")
        self.org_id = org_id
        # The answers of the request's tool calls that committed before it was raised (set by
        # the front end, which keeps them for the run that follows).
        self.answered: tuple = ()


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


class Refusal(Exception):
    """The business rules refuse the request; subclasses carry why, as data."""


class AppointmentNotMarkable(Refusal):
    """Completed / no-show can be recorded only for a booked appointment that has started."""

    def __init__(self, reference: str, why: str):
        super().__init__(f"{reference}: {why}")
        self.reference = reference
        self.why = why


class NotFound(Refusal):
    """The thing asked for does not exist (or is not this caller's to see).

    The one "not found" of the use cases: HTTP answers 404, the CLI exits 1, the assistant
    says it could not find it.
    """

    def __init__(self, what: str, key: object = None):
        super().__init__(what)
        self.what = what
        self.key = key


@dataclass(eq=False)
class NothingBookable(Refusal):
    """The organization has no resources."""


@dataclass(eq=False)
class UnknownResource(Refusal):
    """The caller named a resource the organization does not have."""

    requested: str
    offered: list[str]


@dataclass(eq=False)
class UnknownService(Refusal):
    """The caller named a service outside the organization's catalogue."""

    requested: str
    offered: list[tuple[str, int]]  # (name, minutes)


@dataclass(eq=False)
class StartRefused(Refusal):
    """A start cannot be booked: `reason` is one of scheduling's reasons, NONEXISTENT (the
    clocks skip that wall time) or JUST_TAKEN (a concurrent booking won). `alternatives` are
    the nearest bookable starts; `wall` is the nonexistent wall time as said; `kept` is where a
    moved appointment stays when its new time was taken."""

    NONEXISTENT = "nonexistent"
    JUST_TAKEN = "just_taken"

    reason: str
    start: datetime
    alternatives: list[Slot] = field(default_factory=list)
    wall: datetime | None = None
    kept: datetime | None = None


@dataclass(eq=False)
class TooManyUpcoming(Refusal):
    """The contact holds `limit` upcoming bookings; `own_number` when the caller is its holder
    (anyone else may not learn how many)."""

    limit: int
    own_number: bool


@dataclass(eq=False)
class UnverifiedBookingsLimit(Refusal):
    """The organization took `limit` bookings today for phone numbers that were not the verified
    caller's own: each one texts a number nobody proved is theirs (#24)."""

    limit: int


@dataclass(eq=False)
class CalendarUnavailable(Refusal):
    """Only resources whose linked calendar could not be read lately (policy "refuse") could
    take `start` (None: could have offered any time): whether the owner is free is not known."""

    start: datetime | None


@dataclass(eq=False)
class ChangeLimitReached(Refusal):
    """One VAPI call (or caller, or request) made `limit` changes already."""

    limit: int


@dataclass(eq=False)
class NeedProof(Refusal):
    """Without a verified caller: no reference with the phone or email it was booked with."""


@dataclass(eq=False)
class NoMatch(Refusal):
    """No booking has that reference with that phone or email (whether or not it exists)."""


class AppointmentNotFound(NotFound):
    """A verified caller has no such appointment under their number."""

    def __init__(self):
        super().__init__("appointment")


@dataclass(eq=False)
class AlreadyStarted(Refusal):
    """The appointment has started or is over; `action` is "cancel" or "move"."""

    reference: str
    action: str


@dataclass(eq=False)
class CancelledAppointment(Refusal):
    """A cancelled appointment cannot be moved."""

    reference: str


@dataclass(eq=False)
class RequestIdReused(Refusal):
    """A tool call id answered before for another call, caller or arguments."""


@dataclass(eq=False)
class WaitlistNeedsVerifiedCaller(Refusal):
    """Only the verified caller ID of a phone call may join the waitlist: offers are texted,
    and a number merely said would let anyone subscribe a stranger (#29)."""


@dataclass(eq=False)
class WaitlistFull(Refusal):
    """The caller already waits for `limit` times."""

    limit: int


@dataclass(eq=False)
class IdempotencyKeyReused(Refusal):
    """A REST request's Idempotency-Key was answered before for another request (another
    path or body): nothing is run and nothing of the first answer is shown."""
