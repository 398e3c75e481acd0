"""`make profile-refusals`: what one refusal costs in a diary of 50,000 future bookings (#30).

In-process, like `make profile` (bench/profile.py): a throwaway PostgreSQL (fsync off), the
bench's organization (UTC, one resource open around the clock on a 5-minute grid) with
`make bench`'s diary (every other 5-minute slot booked for a year), statistics gathered, and
bookAppointment requests for taken times through the WSGI app, each answered with the three
nearest free starts. The two engines alternate, pass by pass, on the same diary (this
machine's speed drifts): `python` (the alternatives computed in Python over every booking of
the days searched, as before #30) and `database` (repositories/free_starts.py). Per refusal:
wall and CPU time, statements, round trips (counted on the wire, as bench/profile.py counts
them), rows fetched; then EXPLAIN ANALYZE, on its generic plan, of the one-day search a
refusal runs first.

    python -m bench.refusals [-n 200] [--passes 2]
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import tempfile
import time
from contextlib import redirect_stderr
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from alembic import command
from sqlalchemy import event

from bench.profile import _summary
from bench.run import REFUSAL_PREFILL, prefill_bookings, rest_of_message, setup_org
from booking_service.devtools import pgcluster
from booking_service.persistence.repositories import driver, free_starts
from booking_service.persistence.schema_check import alembic_config
from booking_service.use_cases import openings
from tests.support.wire import counting_relay


def body(k: int, first_epoch: int, rest: str) -> bytes:
    """A refusal as bench/book.lua's `refused` mode asks it: a taken time of the Bench
    resource."""
    start = datetime.fromtimestamp(first_epoch + 600 * (k % REFUSAL_PREFILL), UTC)
    call = (
        f'{{"id":"r{k}","type":"function","function":{{"name":"bookAppointment",'
        f'"arguments":{{"name":"Bench Caller","start":"{start:%Y-%m-%dT%H:%M:00Z}",'
        f'"durationMinutes":5,"resource":"Bench"}}}}}}'
    )
    head = (
        f'{{"type":"tool-calls","call":{{"id":"c{k}"}},'
        f'"customer":{{"number":"+1415{220 + (k // 10000) % 70:03d}{k % 10000:04d}"}}'
    )
    return f'{{"message":{head},"toolCallList":[{call}],{rest}}}}}'.encode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="refusals per pass (default 200)")
    parser.add_argument("--passes", type=int, default=2, help="passes of each engine")
    args = parser.parse_args()

    with pgcluster.throwaway_cluster() as port, counting_relay(port) as (relay, round_trips):
        url = pgcluster.url_for(port)
        plain = url.replace("postgresql+psycopg://", "postgresql://")
        cfg = alembic_config(url)
        cfg.attributes["skip_logging_config"] = True
        command.upgrade(cfg, "head")
        org, secret = setup_org(url)
        with psycopg.connect(plain) as conn:
            resource = conn.execute(
                "SELECT id FROM resources WHERE org_id = %s AND name = 'Bench'", (org,)
            ).fetchone()[0]
        first = int((datetime.now(UTC) + timedelta(days=2)).timestamp()) // 86400 * 86400
        filled = prefill_bookings(url, org, resource, first, REFUSAL_PREFILL)
        print(f"pre-filled {REFUSAL_PREFILL:,} bookings in {filled:.0f} s")
        with tempfile.TemporaryDirectory() as tmp:
            rest = rest_of_message(Path(tmp) / "rest.json").read_text()
        # The app reaches the database through a relay that counts its round trips.
        app_url = url.replace(f":{port}/", f":{relay}/")
        os.environ.update(DATABASE_URL=app_url, LOG_FORMAT="json", LOG_LEVEL="INFO")
        from booking_service.app import create_app
        from booking_service.runtime.extensions import KEY

        app = create_app()
        statements: list[str] = []
        rows = 0

        @event.listens_for(app.extensions[KEY].engine, "before_cursor_execute")
        def _count(_conn, _cursor, sql, *_args):
            statements.append(sql)

        # Rows fetched by the hot statements (the schedule read among them): counted here.
        hot_execute = driver.HotStatement.execute

        def counting(self, session, params=None):
            nonlocal rows
            result = hot_execute(self, session, params)
            rows += len(result.all())
            return result

        driver.HotStatement.execute = counting  # type: ignore[method-assign]

        client = app.test_client()
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        database_engine = openings.alternatives
        engines = {"python": openings.alternatives_in_python, "database": database_engine}
        k = 0

        def refuse() -> None:
            nonlocal k
            response = client.post(
                "/api/vapi/tools", data=body(k * 7919, first, rest), headers=headers
            )
            k += 1
            result = response.get_json()["results"][0]
            if "error" not in result or "nearest free times" not in result["error"]:
                raise SystemExit(f"not refused with alternatives: {result}")

        sink = io.StringIO()
        results: dict[str, list[tuple[float, float, int, int, float, list[float]]]] = {}
        with redirect_stderr(sink):
            logging.getLogger().handlers[0].setStream(sink)
            for engine in engines.values():  # warm-up: prepared statements, caches
                openings.alternatives = engine
                for _ in range(30):
                    refuse()
            for _ in range(args.passes):
                for name, engine in engines.items():
                    openings.alternatives = engine
                    statements.clear()
                    rows = 0
                    latencies = []
                    trips = round_trips.value
                    wall, cpu = time.perf_counter(), time.process_time()
                    for _ in range(args.n):
                        began = time.perf_counter()
                        refuse()
                        latencies.append(time.perf_counter() - began)
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                    trips = round_trips.value - trips
                    results.setdefault(name, []).append(
                        (wall, cpu, len(statements), trips, rows, sorted(latencies))
                    )
            openings.alternatives = database_engine
            statements.clear()
            refuse()
            last = list(statements)
        n = args.n
        for name, passes in results.items():
            for wall, cpu, count, trips, fetched, latencies in passes:
                print(
                    f"{name:8} {n} refusals: wall {wall / n * 1000:6.2f} ms, CPU "
                    f"{cpu / n * 1000:6.2f} ms, {count / n:.1f} statements, {trips / n:.1f} "
                    f"round trips, {fetched / n:6.1f} rows per refusal; "
                    f"p50 {latencies[n // 2] * 1000:.2f} ms, p99 "
                    f"{latencies[n * 99 // 100] * 1000:.2f} ms"
                )
        print("the statements of a refusal (database engine):")
        for sql in last:
            print(f"  {_summary(sql)}")
        with psycopg.connect(plain) as conn:
            asked = datetime.fromtimestamp(first + 600 * 25_000, UTC)
            now = datetime.now(UTC)
            day = asked.date()
            midnight = datetime.combine(day, datetime.min.time(), UTC)
            # The one-day search a refusal runs first (and which settles it in this diary),
            # with the busy window free_starts.FreeStarts reads for it.
            plan = _explain_generic(
                conn,
                {
                    "p_org": org,
                    "p_resources": [resource],
                    "p_first": day,
                    "p_last": day,
                    "p_zone": "UTC",
                    "p_slot": 5,
                    "p_now": now,
                    "p_earliest": now,
                    "p_latest": now + timedelta(days=730),
                    "p_busy_from": midnight - free_starts._BUSY_MARGIN,
                    "p_busy_to": midnight + timedelta(days=1, minutes=5) + free_starts._BUSY_MARGIN,
                    "p_duration": 300.0,
                    "p_blocked": 300.0,
                    "p_exclude": 0,
                    "p_limit": 3,
                    "p_around": asked,
                },
            )
        print("EXPLAIN ANALYZE of the free_starts function's statement, generic plan (one day):")
        for line in plan:
            print(f"  {line}")
    return 0


def _explain_generic(conn: psycopg.Connection, params: dict) -> list[str]:
    """EXPLAIN ANALYZE of the free_starts function's statement on its generic plan, as the
    function runs it (EXPLAIN of the call would show only a function scan): its SQL read back
    from pg_proc, prepared with the function's parameter types, executed with `params`."""
    source, names, arguments = conn.execute(
        "SELECT prosrc, proargnames, pg_get_function_arguments(oid) FROM pg_proc "
        "WHERE proname = 'free_starts'"
    ).fetchone()
    query = source[source.index("RETURN QUERY") + len("RETURN QUERY") : source.rindex(";")]
    types = [argument.split(" ", 1)[1] for argument in arguments.split(", ")]
    names = names[: len(types)]  # the IN parameters; the OUT columns follow
    for n, name in enumerate(names, 1):
        query = re.sub(rf"\b{name}\b", f"${n}", query)
    conn.execute(f"PREPARE search ({', '.join(types)}) AS {query}")
    conn.execute("SET plan_cache_mode = force_generic_plan")
    values = ", ".join(f"%({name})s" for name in names)
    with psycopg.ClientCursor(conn) as cursor:
        # The last of five: the first runs with cold catalog caches.
        for _ in range(5):
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE search ({values})", params)
            rows = cursor.fetchall()
    return [row[0] for row in rows]


if __name__ == "__main__":
    raise SystemExit(main())
