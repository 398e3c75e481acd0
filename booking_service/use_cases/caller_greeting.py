"""What an assistant should know before it says a word (VAPI's assistant-request): the
business's own local date, weekday and time (VAPI's `{{now}}` is UTC, so in the evening an
assistant would otherwise book "tomorrow" on the wrong day), its name and zone, and, for a
verified caller only, their first name and next appointment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from booking_service.domain.normalize import clean_name
from booking_service.domain.times import spoken_date, spoken_datetime, spoken_time
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases.orgs import OrgInfo


@dataclass(frozen=True)
class Greeting:
    """The assistant the organization set (None: it set none) and the call's variables."""

    assistant_id: str | None
    variables: dict[str, str]


def _first_name(name: str | None) -> str:
    cleaned = clean_name(name)
    return cleaned.split()[0] if cleaned else ""


def greeting(
    uow: AbstractUnitOfWork, org: OrgInfo, verified_number: str | None, now: datetime
) -> Greeting:
    """The greeting variables of a call to `org`; the caller's own only with a verified
    number (a phone call's caller ID), never from anything the caller says."""
    local = now.astimezone(org.zone)
    variables = {
        "businessName": org.name,
        "timezone": org.timezone,
        "today": local.date().isoformat(),
        "weekday": f"{local:%A}",
        "localTime": spoken_time(local),
        "todaySpoken": spoken_date(local),
        "callerFirstName": "",
        "nextAppointment": "",
        "nextAppointmentReference": "",
    }
    with uow:
        settings = uow.voice_platforms.get(org.id)
        contact = uow.contacts.find_by_phone(org.id, verified_number) if verified_number else None
        upcoming = uow.appointments.upcoming(org.id, contact.id, now) if contact else []
    if contact is not None:
        ahead = [a for a in upcoming if a.starts_at > now]  # booked, not yet started
        first = ahead[0] if ahead else None
        name = contact.name or (first.name if first is not None else None)
        variables["callerFirstName"] = _first_name(name)
        if first is not None:
            variables["nextAppointment"] = spoken_datetime(first.starts_at.astimezone(org.zone))
            variables["nextAppointmentReference"] = first.reference
    return Greeting(settings.vapi_assistant_id, variables)
