"""What several repositories share: SQLSTATEs they map and the range the exclusion
constraint indexes."""

from __future__ import annotations

from sqlalchemy import (
    func,
    literal_column,
)

LOCK_NOT_AVAILABLE = "55P03"


def blocked_range(start, end):
    return func.tstzrange(start, end, literal_column("'[)'"))
