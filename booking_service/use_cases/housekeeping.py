"""What the worker forgets on its rounds: records kept only to refuse a repeat, once no repeat
can be accepted any more."""

from __future__ import annotations

from datetime import datetime

from booking_service.persistence.unit_of_work import AbstractUnitOfWork


def forget_signatures(uow: AbstractUnitOfWork, before: datetime) -> None:
    """Drop the signed requests' kept answers older than `before` (past the replay window
    twice over), even when no signed request comes to do it on the way."""
    with uow:
        uow.organizations.forget_signatures(before)
        uow.commit()


def forget_sign_in_failures(uow: AbstractUnitOfWork, before: datetime) -> None:
    """Drop the web page's sign-in counters whose window and lock ended before `before`: any
    email typed into the form makes one, so they must not pile up."""
    with uow:
        uow.users.forget_throttles(before)
        uow.commit()
