"""PostgreSQL restarted under load: spoken errors meanwhile, recovery without a restart of ours,
and every answer true afterwards (booked means booked exactly once, failed means nothing)."""

from __future__ import annotations

import itertools
import json
import threading
import time

from alembic import command

from booking_service.devtools import pgcluster
from booking_service.persistence.schema_check import alembic_config
from booking_service.use_cases.orgs import create_org, update_rules
from booking_service.use_cases.webhooks import add_endpoint
from booking_service.worker.loop import Worker
from tests.support.app import Org, make_app
from tests.support.helpers import business_day, envelope, post, tool_call
from tests.support.receiver import receiver

THREADS = 4
LOAD_SECONDS = 9  # bounded: the load stops by itself
DOWN_SECONDS = 2


def _slot(k: int) -> str:
    # 16 non-overlapping 30-minute starts per weekday, day after day.
    day = business_day(days=3 + k // 16)
    minutes = 9 * 60 + 30 * (k % 16)
    return f"{day}T{minutes // 60:02d}:{minutes % 60:02d}"


def test_requests_during_a_database_restart_are_answered_truthfully_and_the_service_recovers():
    """...and the outbox loses nothing: every committed booking has exactly one event, and the
    worker, running through the restart, delivers each of them."""
    with pgcluster.throwaway_cluster_at() as (datadir, port), receiver() as hooks:
        url = pgcluster.url_for(port)
        cfg = alembic_config(url)
        cfg.attributes["skip_logging_config"] = True
        command.upgrade(cfg, "head")
        app = make_app(
            url, DB_POOL_SIZE=THREADS, DB_CONNECT_TIMEOUT_S=1, WEBHOOK_ALLOW_PRIVATE_TARGETS=True
        )
        runtime = app.extensions["booking_service"]
        created = create_org(runtime.uow(), name="Restart Clinic", timezone="America/New_York")
        # Thousands of bookings, 16 a day: the default 60-day horizon would refuse later ones.
        update_rules(runtime.uow(), created.org.id, horizon_days=730)
        org = Org(created.org, created.secret)
        hooks.secrets.append(
            add_endpoint(runtime.uow(), org.id, hooks.url, allow_private=True).secret
        )
        worker = Worker(runtime.uow, runtime.settings)
        delivering = threading.Thread(target=worker.run)
        delivering.start()
        counter = itertools.count()
        answers: list[tuple[float, str, int, dict]] = []
        errors: list[BaseException] = []
        stop_at = time.monotonic() + LOAD_SECONDS
        lock = threading.Lock()

        def load():
            client = app.test_client()
            while time.monotonic() < stop_at:
                k = next(counter)
                call_id = f"call_{k}"
                body = envelope(
                    tool_call(call_id=call_id, name=f"Caller {k}", start=_slot(k)),
                    customer=f"+1202555{k:04d}",
                    call_id=f"vapi-call-{k}",  # one booking per call: below the per-call limit
                )
                try:
                    response = post(client, org, body)
                    entry = response.get_json()["results"][0]
                    with lock:
                        answers.append((time.monotonic(), call_id, response.status_code, entry))
                except BaseException as exc:  # collected and asserted below
                    errors.append(exc)
                    return
                time.sleep(0.01)

        threads = [threading.Thread(target=load) for _ in range(THREADS)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        restart = threading.Thread(
            target=pgcluster.restart, args=(datadir,), kwargs={"down_seconds": DOWN_SECONDS}
        )
        restart_began = time.monotonic()
        restart.start()
        time.sleep(0.5)
        health_during = app.test_client().get("/api/health")
        restart.join(timeout=60)
        restarted = time.monotonic()
        for t in threads:
            t.join(timeout=60)
        health_after = app.test_client().get("/api/health")
        worker.stop()
        delivering.join(timeout=60)
        Worker(runtime.uow, runtime.settings).deliver_due()  # whatever the last poll left

        try:
            assert errors == []
            assert health_during.status_code == 503
            assert health_after.status_code == 200
            assert all(status == 200 for _, _, status, _ in answers)
            booked = {cid for _, cid, _, e in answers if "result" in e}
            failed = {cid for _, cid, _, e in answers if "error" in e}
            during = [e for at, _, _, e in answers if restart_began + 0.2 < at < restarted]
            odd = {e["error"] for e in during if "error" in e and "not reachable" not in e["error"]}
            assert during and not odd, odd
            # Recovered by itself: bookings succeed again within seconds of the restart.
            recovered = [at for at, _, _, e in answers if at > restarted and "result" in e]
            assert recovered and min(recovered) - restarted < 5
            with runtime.engine.connect() as conn:
                from sqlalchemy import text

                rows = conn.execute(
                    text("SELECT tool_call_id, count(*) FROM appointments GROUP BY tool_call_id")
                ).all()
            in_db = dict(rows)
            assert all(in_db.get(cid) == 1 for cid in booked), "a booked answer without its booking"
            assert not any(cid in in_db for cid in failed), "a failed answer whose booking exists"
            assert all(
                json.loads(e["result"])["status"] == "booked"
                for _, _, _, e in answers
                if "result" in e
            )
            with runtime.engine.connect() as conn:
                events = conn.execute(
                    text(
                        "SELECT a.reference, count(e.id), min(e.event_id) "
                        "FROM appointments a LEFT JOIN outbox_events e "
                        "ON e.payload->'data'->>'reference' = a.reference GROUP BY a.reference"
                    )
                ).all()
                orphans = conn.execute(text("SELECT count(*) FROM outbox_events")).scalar()
            assert events and all(n == 1 for _, n, _ in events), "a booking without its event"
            assert orphans == len(events), "an event without its booking"
            delivered = {r.webhook_id for r in hooks.verified()}
            assert delivered == {event_id for _, _, event_id in events}
        finally:
            runtime.engine.dispose()
