"""Health: can we reach the database, and is its schema what the code needs?"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from booking_service.schema_check import check_schema

log = logging.getLogger(__name__)


def check_health(engine: Engine, head: str) -> dict[str, str]:
    """{"database": "ok"|"unavailable", "schema": "ok"|"outdated"|"unknown"}."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            problems = check_schema(conn, head)
    except DBAPIError as exc:
        log.warning("health: database unavailable (%s)", type(exc.orig or exc).__name__)
        return {"database": "unavailable", "schema": "unknown"}
    if problems:
        log.warning("health: schema problems: %s", "; ".join(problems))
        return {"database": "ok", "schema": "outdated"}
    return {"database": "ok", "schema": "ok"}
