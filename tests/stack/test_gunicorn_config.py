"""deploy/gunicorn.conf.py run by a real gunicorn: a bind beyond loopback without a metrics token
is refused at start (moved from tests/http/test_production.py: it starts a process)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from booking_service.devtools.pgcluster import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_gunicorn_refuses_a_public_bind_without_a_metrics_token(database_url):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": database_url,
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="metrics-"),
    }
    started = subprocess.run(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "-c",
            str(ROOT / "deploy" / "gunicorn.conf.py"),
            "--bind",
            f"0.0.0.0:{free_port()}",
            "wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert started.returncode != 0
    assert "without METRICS_TOKEN" in started.stderr
    assert "Traceback" not in started.stderr
