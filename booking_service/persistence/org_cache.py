"""What a worker keeps of each organization between requests (#17): its row (to authenticate
without a statement), its catalogue of resources and services, and its opening hours (to book
an open day without reading them).

All are kept with the organization's `config_version`, which triggers change in the same
transaction as any change to the row, its resources, its services, its hours or its
exceptions (migrations a7d2e9c4b1f6, c4e8f1a2d7b9).
Nothing is trusted for longer than it takes to confirm it:
- an organization authenticated from here is marked `cached`, and the request's first
  statement that reaches the database anyway (the ledger claim of a tool call) reads its
  version; a request that makes no such statement reads it before anything is answered. A
  different version (a rotated or revoked secret, changed rules) rolls the request's
  transaction back and runs it again with the organization read afresh (StaleOrganization);
- a catalogue or opening hours are looked up by (organization, version): what was kept for
  an older version is never used, so a new resource is offered, and changed hours apply, from
  the first request that sees the new version.
Versions come from one sequence and are never reused, so a key cannot come back meaning
something else. The cache is per process and bounded: past `max_orgs` it starts over.
"""

from __future__ import annotations

import threading
from typing import Any

from booking_service.persistence.repositories.organizations import OrganizationRow


class OrgCache:
    """Organization rows, catalogues and opening hours by version, shared by one worker's
    threads."""

    def __init__(self, max_orgs: int = 10_000):
        self._max = max_orgs
        # org id -> (config_version, what was read at that version)
        self._rows: dict[int, tuple[int, OrganizationRow]] = {}
        self._catalogues: dict[int, tuple[int, Any]] = {}
        self._opening_hours: dict[int, tuple[int, Any]] = {}
        # Reads are single dict lookups (atomic under the GIL); writes take the lock so that
        # the size check and the insert happen together.
        self._lock = threading.Lock()

    def row(self, org_id: int) -> OrganizationRow | None:
        """The organization's row as last read, or None."""
        kept = self._rows.get(org_id)
        return kept[1] if kept is not None else None

    def keep_row(self, row: OrganizationRow) -> None:
        """Remember a row just read from the database."""
        self._keep(self._rows, row.id, row.config_version, row)

    def forget(self, org_id: int) -> None:
        """Drop what is kept of an organization (it changed)."""
        with self._lock:
            self._rows.pop(org_id, None)
            self._catalogues.pop(org_id, None)
            self._opening_hours.pop(org_id, None)

    def catalogue(self, org_id: int, version: int) -> Any | None:
        """The catalogue kept for exactly this version of the organization, or None."""
        return self._kept(self._catalogues, org_id, version)

    def keep_catalogue(self, org_id: int, version: int, catalogue: Any) -> None:
        """Remember the catalogue read for this version (a newer version replaces it)."""
        self._keep(self._catalogues, org_id, version, catalogue)

    def opening_hours(self, org_id: int, version: int) -> Any | None:
        """The opening hours kept for exactly this version of the organization, or None."""
        return self._kept(self._opening_hours, org_id, version)

    def keep_opening_hours(self, org_id: int, version: int, hours: Any) -> None:
        """Remember the opening hours read at this version (use_cases/openings.py)."""
        self._keep(self._opening_hours, org_id, version, hours)

    @staticmethod
    def _kept(store: dict[int, tuple[int, Any]], org_id: int, version: int) -> Any | None:
        kept = store.get(org_id)  # one lookup: atomic under the GIL, no lock needed
        return kept[1] if kept is not None and kept[0] == version else None

    def _keep(self, store: dict[int, tuple[int, Any]], org_id: int, version: int, value) -> None:
        with self._lock:
            kept = store.get(org_id)
            if kept is not None and kept[0] > version:
                return  # a request that read it earlier must not put an older one back
            if len(store) >= self._max and org_id not in store:
                store.clear()
            store[org_id] = (version, value)
