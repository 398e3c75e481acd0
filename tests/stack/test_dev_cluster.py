"""What a new user meets after `make run`: the dev cluster keeps its port, and the CLI in a second
terminal finds it (or says in one line what is missing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from booking_service.devtools import pgcluster

ROOT = Path(__file__).resolve().parents[2]
FLASK = str(Path(sys.executable).with_name("flask"))


@pytest.fixture
def dev_cluster():
    # Not under pytest's tmp_path: as root that is private, and the postgres user must reach
    # the folder (as it reaches .pgdata under a project).
    folder = Path(tempfile.mkdtemp(prefix="booking-devcluster-"))
    folder.chmod(0o755)
    datadir = folder / "pgdata"
    yield datadir
    pgcluster.stop(datadir, mode="immediate")
    shutil.rmtree(folder, ignore_errors=True)


def test_the_dev_cluster_keeps_its_port_after_a_crash_with_clients_connected(dev_cluster):
    password = pgcluster.local_password(dev_cluster)
    port = pgcluster.start(dev_cluster, password=password)
    url = pgcluster.url_for(port, password=password).replace("+psycopg", "")
    clients = [psycopg.connect(url, autocommit=True) for _ in range(3)]
    for conn in clients:
        conn.execute("SELECT 1")
    # An immediate stop (as a crash) closes the connections from the server's side while their
    # clients (gunicorn, a psql) still hold them: the server's ends wait on the cluster's port,
    # and a bind without SO_REUSEADDR says "in use" although nothing listens there.
    pgcluster.stop(dev_cluster, mode="immediate")
    try:
        assert pgcluster.start(dev_cluster, password=password) == port
    finally:
        for conn in clients:
            conn.close()


def _cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FLASK_APP")}
    env.update(extra)
    return env


def _second_terminal(folder: Path, *args: str) -> subprocess.CompletedProcess:
    # A new shell in the project: nothing exported, only what `make run` left behind.
    shutil.copy(ROOT / "wsgi.py", folder / "wsgi.py")
    return subprocess.run(
        [FLASK, "--app", "wsgi", *args],
        cwd=folder,
        env=_cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_in_a_second_terminal_finds_the_cluster_make_run_started(dev_cluster, tmp_path):
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "booking_service.devtools.pgcluster",
            "start",
            str(dev_cluster),
            "--env-file",
            str(tmp_path / ".env"),
        ],
        env=_cli_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    url = cli.stdout.strip()
    written = (tmp_path / ".env").read_text().splitlines()
    assert written[1] == f"DATABASE_URL={url}"
    assert written[2].startswith("SECRET_KEY=") and len(written[2]) > 40
    migrated = subprocess.run(
        [str(Path(sys.executable).with_name("alembic")), "upgrade", "head"],
        cwd=ROOT,
        env=_cli_env(DATABASE_URL=url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrated.returncode == 0, migrated.stderr

    created = _second_terminal(
        tmp_path, "org", "create", "--name", "Second Terminal Dental", "--timezone", "Europe/Berlin"
    )

    assert created.returncode == 0, created.stderr
    assert '"id"' in created.stdout
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM organizations")]
    assert names == ["Second Terminal Dental"]


def test_a_missing_database_url_is_one_clear_line(tmp_path):
    result = _second_terminal(tmp_path, "org", "list")

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["booking_service: DATABASE_URL is not set (expected postgresql+psycopg://...)"]


def _start_as_make_run(datadir: Path, env_file: Path) -> str:
    started = subprocess.run(
        [
            sys.executable,
            "-m",
            "booking_service.devtools.pgcluster",
            "start",
            str(datadir),
            "--env-file",
            str(env_file),
        ],
        env=_cli_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return started.stdout.strip()


def _refused_without_password(url: str) -> None:
    bare = psycopg.conninfo.conninfo_to_dict(url.replace("+psycopg", ""))
    bare.pop("password")
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(**bare, connect_timeout=5).close()


def test_the_make_run_cluster_wants_its_password_from_every_connection(dev_cluster, tmp_path):
    """Any local user can reach a loopback port: a trusting cluster made each a superuser."""
    url = _start_as_make_run(dev_cluster, tmp_path / ".env")
    password = pgcluster.local_password(dev_cluster)
    assert f"{pgcluster.SUPERUSER}:{password}@" in url
    assert (tmp_path / ".env").stat().st_mode & 0o777 == 0o600
    assert (dev_cluster / "password").stat().st_mode & 0o777 == 0o600
    _refused_without_password(url)
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (pgcluster.SUPERUSER,)
    hba = (dev_cluster / "data" / "pg_hba.conf").read_text()
    assert "trust" not in [
        line.split()[-1]
        for line in hba.splitlines()
        if line.split()[:1] and not line.startswith("#")
    ]

    # make run again (cluster running, then stopped): the same password, the same .env.
    assert _start_as_make_run(dev_cluster, tmp_path / ".env") == url
    pgcluster.stop(dev_cluster)
    assert _start_as_make_run(dev_cluster, tmp_path / ".env") == url
    assert f"DATABASE_URL={url}" in (tmp_path / ".env").read_text()


def test_a_trusting_cluster_from_before_gets_the_password_on_the_next_start(dev_cluster, tmp_path):
    port = pgcluster.start(dev_cluster)  # as an older version made it: trust
    psycopg.connect(pgcluster.url_for(port).replace("+psycopg", "")).close()

    url = _start_as_make_run(dev_cluster, tmp_path / ".env")
    _refused_without_password(url)
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        conn.execute("SELECT 1")
