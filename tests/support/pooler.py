"""Debian's PgBouncer in transaction mode on a loopback port, in front of a test cluster.

Started with its defaults but for the pool mode (no `ignore_startup_parameters`), as a
transaction-mode pooler is handed out by managed PostgreSQL services. Installed with apt-get
when missing and running as root, like nginx for the stack tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from booking_service.devtools import pgcluster
from tests.support.stack import _apt

PGBOUNCER = Path("/usr/sbin/pgbouncer")
APT_TIMEOUT_S = 600
# The process id of each running PgBouncer, by its port (`make profile` reads its CPU time).
PIDS: dict[int, int] = {}


class PgBouncerUnavailable(RuntimeError):
    """PgBouncer is missing and cannot be installed here; the message says how to get it."""


def ensure_pgbouncer() -> Path:
    """Debian's pgbouncer binary, installed with apt-get when root and missing."""
    if PGBOUNCER.exists():
        return PGBOUNCER
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise PgBouncerUnavailable(
            f"{PGBOUNCER} is missing: the pooler tests need Debian's pgbouncer. Install it with "
            "`sudo apt-get install pgbouncer`, or run `make test` as root."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    outputs = [_apt(["apt-get", "update", "-q"], env)]
    outputs.append(
        _apt(["apt-get", "install", "-y", "-q", "--no-install-recommends", "pgbouncer"], env)
    )
    if PGBOUNCER.exists():
        return PGBOUNCER
    raise PgBouncerUnavailable("apt-get could not install pgbouncer:\n" + "\n".join(outputs))


@contextlib.contextmanager
def pgbouncer(upstream_host: str, upstream_port: int, pool_size: int = 10) -> Iterator[int]:
    """Run PgBouncer (transaction mode) in front of the cluster; yields its port."""
    binary = ensure_pgbouncer()
    workdir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    workdir.chmod(0o777)  # it drops root privileges (to postgres) and writes its log here
    port = pgcluster.free_port()
    ini = workdir / "pgbouncer.ini"
    ini.write_text(
        f"""[databases]
* = host={upstream_host} port={upstream_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir}/users.txt
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 500
logfile = {workdir}/pgbouncer.log
pidfile = {workdir}/pgbouncer.pid
"""
    )
    (workdir / "users.txt").write_text(f'"{pgcluster.SUPERUSER}" ""\n')
    for path in workdir.iterdir():
        path.chmod(0o644)
    cmd = [str(binary), str(ini)]
    if os.geteuid() == 0:
        cmd[1:1] = ["-u", "postgres"]  # it refuses to run as root
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with psycopg.connect(
                    f"host=127.0.0.1 port={port} user={pgcluster.SUPERUSER} dbname=postgres",
                    prepare_threshold=None,
                    connect_timeout=2,
                ):
                    break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    log = (workdir / "pgbouncer.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"pgbouncer did not start:\n{log}") from None
                time.sleep(0.1)
        PIDS[port] = proc.pid
        yield port
    finally:
        PIDS.pop(port, None)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def through(database_url: str, port: int) -> str:
    """The same database, reached through the pooler on `port`."""
    head, _, tail = database_url.rpartition("@")
    dbname = tail.split("/", 1)[1]
    return f"{head}@127.0.0.1:{port}/{dbname}"
