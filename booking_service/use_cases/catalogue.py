"""What an organization offers: its resources and services, and choosing among them."""

from __future__ import annotations

from dataclasses import dataclass

from booking_service.domain.errors import NothingBookable, UnknownResource, UnknownService
from booking_service.persistence.repositories.schedule import ResourceRow, ServiceRow
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases.orgs import OrgInfo
from booking_service.use_cases.resources import name_key


@dataclass(frozen=True)
class ServiceChoice:
    """The catalogue service to record (None when the organization has no catalogue), the
    appointment length, and the caller's own words when no catalogue could match them."""

    name: str | None
    minutes: int
    asked: str | None = None


@dataclass(frozen=True)
class Catalogue:
    """What an organization offers: its resources (by id) and services (by name). Shared by
    requests when it comes from the organization cache, so nothing in it can change."""

    resources: tuple[ResourceRow, ...]
    services: tuple[ServiceRow, ...]

    def resource_names(self) -> dict[int, str]:
        return {r.id: r.name for r in self.resources}


def load_catalogue(uow: AbstractUnitOfWork, org: OrgInfo) -> Catalogue:
    """The organization's resources and services: one statement, or none when the unit of
    work's organization cache holds them for the organization's version (org_cache)."""
    cache = uow.org_cache
    if cache is not None:
        kept = cache.catalogue(org.id, org.version)
        if kept is not None:
            return kept
    resources, services = uow.schedule.catalogue(org.id)
    catalogue = Catalogue(tuple(resources), tuple(services))
    if cache is not None:
        cache.keep_catalogue(org.id, org.version, catalogue)
    return catalogue


def choose_resources(catalogue: Catalogue, requested: str | None) -> list[ResourceRow]:
    """All resources, or the one the caller named (case-insensitive).

    Raises NothingBookable without resources, UnknownResource for a name not among them.
    """
    resources = list(catalogue.resources)
    if not resources:
        raise NothingBookable()
    if not requested:
        return resources
    match = [r for r in resources if r.name_key == name_key(requested)]
    if not match:
        raise UnknownResource(requested, [r.name for r in resources])
    return match


def choose_service(
    catalogue: Catalogue, org: OrgInfo, service: str | None, minutes: int | None
) -> ServiceChoice:
    """Match the service (when the organization lists services) and settle the duration.

    Raises UnknownService for a service outside a catalogue.
    """
    offered = catalogue.services
    if service and offered:
        match = next((s for s in offered if s.name_key == name_key(service)), None)
        if match is None:
            raise UnknownService(service, [(s.name, s.duration_minutes) for s in offered])
        return ServiceChoice(match.name, minutes or match.duration_minutes)
    # Without a catalogue the caller's words are only a note for staff: stored as the service,
    # they would be read out to whoever holds the booking later.
    return ServiceChoice(None, minutes or org.appointment_minutes, asked=service)
