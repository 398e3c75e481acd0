"""`make profile`: where one booking's time goes, in-process, without nginx or wrk.

Starts a throwaway PostgreSQL (fsync off: this measures our CPU and round trips, not the
disk), builds the app as production does (JSON logs at INFO), and books N distinct callers
through the WSGI app with ~50 KB VAPI bodies. Prints, per booking: wall time, this process's
CPU time and the number of SQL statements sent (SAVEPOINT/RELEASE and pool pings included).
With `--pyinstrument` it also prints a call tree of the measured bookings; `--calls` counts
Python function calls per booking (repeatable where timings on a shared machine are not);
`--freeze` runs them after gc.freeze(), as production workers do.

    python -m bench.profile [-n 300] [--pyinstrument] [--calls] [--freeze] [--calendar-linked]
                            [--pooler] [--path vapi|rest|retell|google|call|sms]

Round trips are counted on the wire (bench/wire.py: a relay between the app and the database
counts the Query and Sync messages after which the client waits), and PostgreSQL's CPU per
booking is read from /proc for its client backends. `--pooler` puts PgBouncer (transaction
mode, as `make bench` runs it) between them, with DB_POOLER=transaction, and adds its CPU.

`--calendar-linked` first links the bench resource to a (never called) CalDAV calendar that
pushes and blocks, with 1,000 busy times read from it: the same measure with calendars on.

`--path` books through another front end instead of VAPI's (the #30 bench scenarios): `rest`
(POST /api/v1/bookings with an API key and a new Idempotency-Key each), `retell` (a signed
Retell tool call each) or `google` (the VAPI booking on a resource with a blocking, pushing
Google Calendar link and 1,000 busy times in our tables): where they differ from VAPI's.
`call` is a caller's whole call as assistants make it: an availability check for the day, then
the booking (two VAPI requests; the figures are per call). An availability check reads and
rolls back, which must not cost the booking after it its prepared statements (#30). `sms` is
the two-way SMS reply (POST /api/twilio/sms/ORG_ID, signed): a reply "1" that confirms an
upcoming booking whose SMS confirmation was sent, per booking confirmed.

It is the quick loop for making the booking path cheaper; `make bench` is the real measure.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import json
import logging
import os
import pstats
import re
import tempfile
import time
from contextlib import redirect_stderr
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import psycopg
from alembic import command
from sqlalchemy import event
from twilio.request_validator import RequestValidator

from bench import signed
from bench.run import api_key, link_calendar, platform_credentials, rest_of_message, setup_org
from booking_service.devtools import pgcluster
from booking_service.persistence.schema_check import alembic_config
from tests.support.platforms import retell_body, retell_signature
from tests.support.wire import counting_relay


def body(k: int, base: int, rest: str) -> bytes:
    """The k-th booking, like bench/book.lua's `distinct` mode: a new caller and a free slot."""
    start = datetime.fromtimestamp(signed.slot_epoch(base, k), UTC).strftime("%Y-%m-%dT%H:%M:00Z")
    arguments = {"name": "Bench Caller", "start": start, "durationMinutes": 5}
    return _tool_calls(k, f"b{k}", "bookAppointment", arguments, rest)


def availability(k: int, base: int, rest: str) -> bytes:
    """The availability check the k-th caller makes before booking (`--path call`): the day
    of its booking, in the same call."""
    day = datetime.fromtimestamp(signed.slot_epoch(base, k), UTC).strftime("%Y-%m-%d")
    return _tool_calls(k, f"a{k}", "checkAvailability", {"date": day}, rest)


def _tool_calls(k: int, call_id: str, tool: str, arguments: dict, rest: str) -> bytes:
    """A VAPI tool-calls body of the k-th caller (its own number and phone call) with one
    tool call, and the ~50 KB `rest` of a real message."""
    phone = f"+1415{220 + (k // 10000) % 70:03d}{k % 10000:04d}"
    call = {"id": call_id, "type": "function", "function": {"name": tool, "arguments": arguments}}
    head = json.dumps(
        {"type": "tool-calls", "call": {"id": f"c{k}"}, "customer": {"number": phone}}
    )[:-1]
    return f'{{"message":{head},"toolCallList":[{json.dumps(call)}],{rest}}}}}'.encode()


def _gc_timer(pauses: list[float]):
    """A gc callback recording how long each collection of the oldest generation took."""
    began = 0.0

    def callback(phase: str, info: dict) -> None:
        nonlocal began
        if info["generation"] != 2:
            return
        if phase == "start":
            began = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - began)

    return callback


def _calls_by_package(stats: pstats.Stats) -> list[tuple[str, int]]:
    """Function calls summed per installed package (or module file, or "~" for built-ins)."""
    totals: dict[str, int] = {}
    for (path, _, _), (_, calls, *_) in stats.stats.items():
        if "site-packages/" in path:
            package = path.split("site-packages/")[1].split("/")[0]
        elif "booking_service" in path:
            package = "booking_service"
        else:
            package = Path(path).name
        totals[package] = totals.get(package, 0) + calls
    return sorted(totals.items(), key=lambda item: -item[1])


def _summary(sql: str) -> str:
    """One line for a statement: its start, with the tables it names."""
    flat = " ".join(sql.split())
    tables = sorted(set(re.findall(r"\b(?:FROM|INTO|UPDATE|JOIN)\s+([a-z_]+)", flat)))
    head = flat[:60] + ("..." if len(flat) > 60 else "")
    return f"{head:64} [{', '.join(tables)}]" if tables else head


def _cpu_ticks(pids: list[int]) -> dict[int, int]:
    """User plus system CPU of each process, in clock ticks (/proc/<pid>/stat)."""
    ticks = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks[pid] = int(fields[11]) + int(fields[12])
    return ticks


def _backends(conn: psycopg.Connection) -> list[int]:
    """The cluster's client backends but this one (the app's, or PgBouncer's)."""
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'"
        " AND pid <> pg_backend_pid()"
    ).fetchall()
    return [pid for (pid,) in rows]


def _spent_ms(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU milliseconds spent between two readings, by the processes in both."""
    ticks = sum(after[pid] - before[pid] for pid in after if pid in before)
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


def _booker(path: str, client, url: str, org: int, secret: str, base: int, rest: str, n: int):
    """book(k): the k-th booking through the front end `path`, its request made beforehand
    (so that building or signing it is not measured); raises SystemExit unless it booked."""
    if path == "rest":
        key = api_key(url, org)
        requests = []
        for k in range(n):
            start = datetime.fromtimestamp(signed.slot_epoch(base, k), UTC)
            payload = {
                "start": start.strftime("%Y-%m-%dT%H:%M:00Z"),
                "name": "Bench Caller",
                "phone": signed.phone(k, 220),
                "resource": "Bench",
                "service": "Quick",
            }
            headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"profile-{k}"}
            headers["Content-Type"] = "application/json"
            requests.append(("/api/v1/bookings", json.dumps(payload).encode(), headers))
        expect = (201, b'"reference"')
    elif path == "retell":
        platform_credentials(url, org, os.environ["SECRET_KEY"])
        requests = []
        for k in range(n):
            start = datetime.fromtimestamp(signed.slot_epoch(base, k), UTC)
            args = {
                "name": "Bench Caller",
                "start": start.strftime("%Y-%m-%dT%H:%M:00Z"),
                "durationMinutes": 5,
                "resource": "Bench",
            }
            raw = json.dumps(
                retell_body("bookAppointment", args, caller=signed.phone(k, 300), call_id=f"r{k}"),
                separators=(",", ":"),
            ).encode()
            headers = {
                "X-Retell-Signature": retell_signature(raw, signed.RETELL_KEY),
                "Content-Type": "application/json",
            }
            requests.append((f"/api/retell/{org}/tools", raw, headers))
        expect = (200, b"booked")
    elif path == "sms":
        # The #30 scenario "SMS replies (confirm)": callers with an upcoming booking whose SMS
        # confirmation was sent, each replying "1" once, signed for the test client's address.
        platform_credentials(url, org, os.environ["SECRET_KEY"])
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            other = conn.execute(
                "SELECT id FROM resources WHERE org_id = %s AND name <> 'Bench' ORDER BY id",
                (org,),
            ).fetchone()[0]
        signed.seed_replies(url, org, other, base + 800 * 86400, n)
        where = f"/api/twilio/sms/{org}"
        validator = RequestValidator(signed.TWILIO_TOKEN)
        requests = []
        for k in range(n):
            form, signature = signed.sms_reply(validator, f"http://localhost{where}", k, base)
            headers = {
                "X-Twilio-Signature": signature,
                "Content-Type": "application/x-www-form-urlencoded",
            }
            requests.append((where, urlencode(form).encode(), headers))
        expect = (200, b"is confirmed")
    else:
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        requests = [("/api/vapi/tools", body(k, base, rest), headers) for k in range(n)]
        expect = (200, b"booked")
    checks = [availability(k, base, rest) for k in range(n)] if path == "call" else None
    bearer = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}

    def book(k: int) -> None:
        if checks is not None:
            response = client.post(
                "/api/vapi/tools",
                data=checks[k],
                headers=bearer,
            )
            if response.status_code != 200 or b'"available' not in response.data:
                raise SystemExit(f"check {k} failed: {response.status_code} {response.data[:300]}")
        where, data, headers = requests[k]
        response = client.post(where, data=data, headers=headers)
        if response.status_code != expect[0] or expect[1] not in response.data:
            raise SystemExit(f"booking {k} failed: {response.status_code} {response.data[:300]}")

    return book


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="bookings to measure (default 300)")
    parser.add_argument("--pyinstrument", action="store_true", help="print a call tree")
    parser.add_argument(
        "--calls",
        action="store_true",
        help="count Python function calls per booking (cProfile): a repeatable measure of work",
    )
    parser.add_argument(
        "--freeze",
        action="store_true",
        help="gc.freeze() after warming up, as deploy/gunicorn.conf.py does in each worker",
    )
    parser.add_argument(
        "--calendar-linked",
        action="store_true",
        help="link the bench resource to a pushing, blocking calendar with 1,000 busy times",
    )
    parser.add_argument(
        "--pooler",
        action="store_true",
        help="through PgBouncer in transaction mode (DB_POOLER=transaction), as make bench",
    )
    parser.add_argument(
        "--path",
        choices=("vapi", "rest", "retell", "google", "call", "sms"),
        default="vapi",
        help="the front end that books (default vapi; see above)",
    )
    args = parser.parse_args()
    # The CLI that stores the Retell key seals it with the SECRET_KEY the app then unseals with.
    os.environ.setdefault("SECRET_KEY", "bench-profile-secret-key-0123456789abcdef")

    with contextlib.ExitStack() as stack:
        port = stack.enter_context(pgcluster.throwaway_cluster())
        url = pgcluster.url_for(port)
        cfg = alembic_config(url)
        cfg.attributes["skip_logging_config"] = True
        command.upgrade(cfg, "head")
        org, secret = setup_org(url)
        with tempfile.TemporaryDirectory() as tmp:
            rest = rest_of_message(Path(tmp) / "rest.json").read_text()
        app_port, pooler_pid = port, None
        if args.pooler:
            from tests.support.pooler import PIDS, pgbouncer

            app_port = stack.enter_context(pgbouncer("127.0.0.1", port, pool_size=20))
            pooler_pid = PIDS[app_port]
            os.environ.update(DB_POOLER="transaction", DIRECT_DATABASE_URL=url)
        relay_port, round_trips = stack.enter_context(counting_relay(app_port))
        app_url = url.replace(f":{port}/", f":{relay_port}/")
        os.environ.update(DATABASE_URL=app_url, LOG_FORMAT="json", LOG_LEVEL="INFO")
        from booking_service.app import create_app
        from booking_service.runtime.extensions import KEY

        app = create_app()
        statements = 0
        seen: list[str] = []  # the last booking's statements, to print them

        @event.listens_for(app.extensions[KEY].engine, "before_cursor_execute")
        def _count(_conn, _cursor, sql, *_args):
            nonlocal statements
            statements += 1
            seen.append(sql)

        # (No pool pre-ping to count: a checkout checks the socket locally, see db.py.)

        client = app.test_client()
        base = int((datetime.now(UTC) + timedelta(days=2)).timestamp()) // 86400 * 86400
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            resource = conn.execute(
                "SELECT id FROM resources WHERE org_id = %s AND name = 'Bench'", (org,)
            ).fetchone()[0]
        if args.calendar_linked:
            link_calendar(url, org, resource, base)
        if args.path == "google":
            signed.link_google(url, org, resource, base)
        warm = 200
        book = _booker(args.path, client, url, org, secret, base, rest, warm + args.n)

        sink = io.StringIO()
        with redirect_stderr(sink):
            logging.getLogger().handlers[0].setStream(sink)
            for k in range(warm):
                book(k)
            # Statistics, as a live database has them (bench/run.py's analyze()).
            with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
                conn.autocommit = True
                conn.execute("ANALYZE")
            if args.freeze:
                gc.freeze()
            direct = stack.enter_context(
                psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
            )
            direct.autocommit = True
            processes = _backends(direct)
            server_before = _cpu_ticks(processes)
            pooler_before = _cpu_ticks([pooler_pid] if pooler_pid else [])
            trips_before = round_trips.value
            statements = 0
            profiler = None
            counter = cProfile.Profile() if args.calls else None
            if counter:
                counter.enable()
            if args.pyinstrument:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0005)
                profiler.start()
            pauses: list[float] = []
            gc.callbacks.append(_gc_timer(pauses))
            latencies = []
            wall, cpu = time.perf_counter(), time.process_time()
            for k in range(warm, warm + args.n):
                seen.clear()
                began = time.perf_counter()
                book(k)
                latencies.append(time.perf_counter() - began)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            trips = round_trips.value - trips_before
            server_ms = _spent_ms(server_before, _cpu_ticks(processes))
            pooler_ms = _spent_ms(pooler_before, _cpu_ticks([pooler_pid] if pooler_pid else []))
            gc.callbacks.pop()
            if counter:
                counter.disable()
            if profiler:
                profiler.stop()
        n = args.n
        print(
            f"{n} bookings: wall {wall / n * 1000:.2f} ms, CPU {cpu / n * 1000:.2f} ms, "
            f"{statements / n:.1f} statements and {trips / n:.1f} round trips per booking"
            + (" (through PgBouncer, DB_POOLER=transaction)" if args.pooler else "")
        )
        print(
            f"PostgreSQL CPU {server_ms / n:.2f} ms per booking"
            + (f", PgBouncer CPU {pooler_ms / n:.2f} ms" if args.pooler else "")
        )
        print("the statements of the last booking:")
        for sql in seen:
            print(f"  {_summary(sql)}")
        latencies.sort()
        print(
            f"latency p50 {latencies[n // 2] * 1000:.2f} ms, p99 {latencies[n * 99 // 100] * 1000:.2f}"
            f" ms, max {latencies[-1] * 1000:.2f} ms; {len(pauses)} garbage collections of the"
            f" oldest generation, longest {max(pauses, default=0) * 1000:.1f} ms"
        )
        if counter:
            stats = pstats.Stats(counter)
            print(
                f"{stats.total_calls / n:.0f} Python function calls per booking (repeatable, "
                "unlike time), by package:"
            )
            for package, calls in _calls_by_package(stats)[:12]:
                print(f"  {package:28} {calls / n:7.0f}")
        if profiler:
            print(profiler.output_text(unicode=False, color=False, show_all=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
