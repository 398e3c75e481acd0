"""Domain events: what happened to an appointment, as facts for whoever must hear of it.

Use cases add them to the unit of work (`uow.add_event`) as the change happens; the unit of
work keeps those of its transaction, drops those of a savepoint that rolled back, and hands
them over when it commits (`SqlAlchemyUnitOfWork._persist_events`, where the outbox writes
them in the same transaction). Times are UTC instants; wording and local time belong to whoever
delivers them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar


@dataclass(frozen=True)
class AppointmentEvent:
    """Common facts of an appointment event (the appointment as it is after the change)."""

    org_id: int
    timezone: str  # the organization's IANA zone, for local times in what is sent
    appointment_id: int
    contact_id: int
    reference: str
    starts_at: datetime
    ends_at: datetime
    resource: str
    service: str | None
    name: str | None  # the name it was booked under
    email: str | None  # the email it was booked with


@dataclass(frozen=True)
class AppointmentBooked(AppointmentEvent):
    """A new appointment was booked."""


@dataclass(frozen=True)
class AppointmentRescheduled(AppointmentEvent):
    """An appointment moved (same reference); `previous_start` is where it was."""

    previous_start: datetime | None = None
    # The resource it was with before the move (the freed time's, for the waitlist, #29).
    previous_resource: str | None = None


@dataclass(frozen=True)
class AppointmentCancelled(AppointmentEvent):
    """An appointment was cancelled (a status change, never a delete)."""

    reason: str | None = None


@dataclass(frozen=True)
class AppointmentConfirmed(AppointmentEvent):
    """The caller confirmed the appointment by replying to a confirmation or reminder (#29)."""


@dataclass(frozen=True)
class AppointmentCompleted(AppointmentEvent):
    """The owner marked an appointment that has started as having taken place."""


@dataclass(frozen=True)
class AppointmentNoShow(AppointmentEvent):
    """The owner marked an appointment that has started as missed by the caller."""


E = TypeVar("E", bound=AppointmentEvent)


class StoredAppointment(Protocol):
    """What an event is made from: an appointment as the repositories read it (a frozen
    dataclass, so the members are read-only)."""

    @property
    def id(self) -> int: ...
    @property
    def contact_id(self) -> int: ...
    @property
    def reference(self) -> str: ...
    @property
    def starts_at(self) -> datetime: ...
    @property
    def ends_at(self) -> datetime: ...
    @property
    def service(self) -> str | None: ...
    @property
    def name(self) -> str | None: ...
    @property
    def email(self) -> str | None: ...


def appointment_event(
    kind: type[E],
    org_id: int,
    timezone: str,
    appointment: StoredAppointment,
    resource: str,
    **extra,
) -> E:
    """An event of `kind` about `appointment` as it is now (`extra`: previous_start, reason)."""
    return kind(
        org_id=org_id,
        timezone=timezone,
        appointment_id=appointment.id,
        contact_id=appointment.contact_id,
        reference=appointment.reference,
        starts_at=appointment.starts_at,
        ends_at=appointment.ends_at,
        resource=resource,
        service=appointment.service,
        name=appointment.name,
        email=appointment.email,
        **extra,
    )
