"""The start-up gate: refuse to serve on a database the code cannot rely on.

The incident behind this service was an upsert aimed at a constraint nobody had checked. The
server checks once, before it forks workers, and exits with a clear message unless
SCHEMA_CHECK_OVERRIDE is set.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from booking_service.config import ConfigError, Settings
from booking_service.persistence.db import make_engine
from booking_service.persistence.schema_check import check_schema, head_revision
from booking_service.runtime.proxy import is_loopback


def schema_problems(settings: Settings) -> list[str]:
    """What the live database lacks (empty when all is well); connection failures included."""
    engine = make_engine(settings)
    try:
        with engine.connect() as conn:
            return check_schema(conn, head_revision())
    except Exception as exc:  # reported, not raised: the operator needs the sentence
        return [f"cannot reach the database ({type(exc).__name__})"]
    finally:
        # Nothing pooled survives into the forked workers.
        engine.dispose()


def exposed_binds(binds: Iterable[str]) -> list[str]:
    """The gunicorn bind addresses that other machines can reach (not loopback, not a Unix
    socket or an inherited descriptor)."""
    exposed = []
    for bind in binds:
        if bind.startswith(("unix:", "fd://")):
            continue
        # "[::1]:8000" or "127.0.0.1:8000" / "localhost" (the port is optional)
        host = bind[1:].split("]", 1)[0] if bind.startswith("[") else bind.split(":", 1)[0]
        if host != "localhost" and not is_loopback(host):
            exposed.append(bind)
    return exposed


def gate(settings: Settings | None = None, binds: Iterable[str] = ()) -> None:
    """Exit(1) with the problems on stderr, unless the schema is fine or the override is set.

    Also refuses a bind beyond loopback without METRICS_TOKEN: /metrics would then rely on
    nothing but the socket peer, and the numbers of a business's traffic are not public.
    """
    try:
        settings = (settings or Settings.from_env()).validate()
    except ConfigError as exc:
        sys.exit(f"Refusing to serve: {exc}")
    exposed = exposed_binds(binds)
    if exposed and not settings.metrics_token:
        sys.exit(
            f"Refusing to serve: bound to {', '.join(exposed)} (reachable from other machines) "
            "without METRICS_TOKEN. Set METRICS_TOKEN, or bind to 127.0.0.1 behind nginx."
        )
    problems = schema_problems(settings)
    if not problems:
        return
    lines = "\n".join(f"  - {p}" for p in problems)
    if settings.schema_check_override:
        print(
            f"WARNING: serving despite schema problems (SCHEMA_CHECK_OVERRIDE):\n{lines}",
            file=sys.stderr,
        )
        return
    print(
        "Refusing to serve: the database is not what this version needs:\n"
        f"{lines}\nRun `alembic upgrade head` (and see `flask --app wsgi schema check`), "
        "or set SCHEMA_CHECK_OVERRIDE=1 to serve anyway.",
        file=sys.stderr,
    )
    sys.exit(1)
