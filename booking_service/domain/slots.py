"""A bookable start on a resource: what a slot search offers and a refusal proposes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Slot:
    """A bookable start on a resource."""

    start: datetime
    resource_id: int
    resource_name: str
