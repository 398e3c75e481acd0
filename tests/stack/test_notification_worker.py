"""The notifier in a real `flask worker` process, killed at the worst moment: after the provider
took a message and before the worker recorded it. Nothing is sent twice."""

# ruff: noqa: F811 - the notification fixtures are imported by name and used as parameters
from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from booking_service.use_cases.send_messages import Notifier
from tests.support.helpers import cli, local_start
from tests.support.notifications import (  # noqa: F401 - fixtures
    CALLER,
    app,
    book,
    env,
    mailbox,
    org,
    twilio,
)

ROOT = Path(__file__).resolve().parents[2]


def test_a_worker_killed_between_the_provider_and_the_record_does_not_send_twice(
    env, rt, app, org, db, twilio
):
    book(app, org, local_start(days=3, hour=9))
    cli(app, "org", "email", str(org.id), "--disable")  # only the SMS matters here
    worker = subprocess.Popen(
        [str(Path(sys.executable).with_name("flask")), "--app", "wsgi", "worker"],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), "LOG_LEVEL": "WARNING", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Twilio has the message; the worker dies before it hears back.
    twilio.after_store = lambda message: os.kill(worker.pid, signal.SIGKILL)
    try:
        worker.wait(timeout=60)
    finally:
        twilio.after_store = None
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == -signal.SIGKILL
    statuses = db.execute(
        "SELECT status FROM notifications WHERE channel = 'sms' AND kind = 'confirmation'"
    ).fetchall()
    assert statuses == [("sending",)]  # in doubt

    Notifier(rt.uow, rt.settings, in_doubt_after=timedelta(0)).send_due()

    assert len(twilio.sent_to(CALLER)) == 1
    status, provider_id = db.execute(
        "SELECT status, provider_id FROM notifications WHERE channel = 'sms' "
        "AND kind = 'confirmation'"
    ).fetchone()
    assert status == "sent" and provider_id == twilio.messages[0]["sid"]
