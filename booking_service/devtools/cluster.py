"""Managing a private PostgreSQL cluster with Debian's server binaries: find (or install) them,
initialise a data folder, start it on a free loopback port, stop and restart it, and a
disposable cluster for tests (`throwaway_cluster`). The command line over this, and the files
`make run` keeps beside the data (password, SECRET_KEY, .env), are in pgcluster.py.

A cluster started with a password needs it on every connection (scram-sha-256); one started
without trusts loopback (the throwaway one: see pgcluster.py). TCP on 127.0.0.1 only, no Unix
socket. initdb and pg_ctl refuse to run as root, so as root they run as the `postgres` user;
when the server binaries are missing, root gets them from apt-get and anyone else gets
instructions.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

DB_NAME = "booking_service"
SUPERUSER = "postgres"
# Durable enough for development; the throwaway cluster trades durability for speed.
THROWAWAY_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class ClusterError(RuntimeError):
    """A problem the person running the command has to fix; the message says how."""


def _is_root() -> bool:
    return os.geteuid() == 0


def find_bindir() -> Path | None:
    """Return the folder holding initdb/pg_ctl, newest major version first, or None."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in candidates:
        if Path(folder, "initdb").exists() and Path(folder, "pg_ctl").exists():
            return Path(folder)
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    return None


def ensure_server_binaries() -> Path:
    """Find the PostgreSQL server binaries, installing Debian's package when root."""
    bindir = find_bindir()
    if bindir:
        return bindir
    if not _is_root() or not shutil.which("apt-get"):
        raise ClusterError(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install them, e.g. "
            "`sudo apt-get install postgresql`, or set DATABASE_URL to an existing database."
        )
    print("Installing Debian's PostgreSQL server package (apt-get)...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"],
        check=True,
        env=env,
    )
    bindir = find_bindir()
    if not bindir:
        raise ClusterError("apt-get installed postgresql but initdb/pg_ctl are still missing.")
    return bindir


def _as_owner(cmd: list[str]) -> list[str]:
    # initdb/pg_ctl refuse to run as root; the Debian package provides the postgres user.
    if _is_root():
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(_as_owner(cmd), check=True, **kwargs)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As PostgreSQL binds its own listening socket: connections left in TIME_WAIT by an
        # immediate stop (clients still connected) must not make the saved port look taken,
        # or the cluster wanders to a new port and every DATABASE_URL that named it breaks.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """Ask the kernel for a currently unused loopback port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _prepare_dir(datadir: Path) -> None:
    datadir.mkdir(parents=True, exist_ok=True)
    if _is_root():
        shutil.chown(datadir, user="postgres", group="postgres")
        probe = subprocess.run(
            ["runuser", "-u", "postgres", "--", "test", "-w", str(datadir)], check=False
        )
        if probe.returncode != 0:
            raise ClusterError(
                f"The postgres user cannot reach {datadir} (a parent folder is private). "
                "Move the project to a folder others can traverse, or set DATABASE_URL."
            )


# Every connection, local socket or TCP, must give the password.
SCRAM_ONLY_HBA = """# written by booking_service.devtools.pgcluster: a password for every connection
local   all             all                                     scram-sha-256
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     all             ::1/128                 scram-sha-256
"""


def _owned_by_server(path: Path) -> None:
    # As root the server runs as postgres, which must read what it is given.
    if _is_root():
        shutil.chown(path, user="postgres", group="postgres")


def _initdb(bindir: Path, pgdata: Path, password: str | None = None) -> None:
    auth = ["--auth=trust"]
    pwfile = pgdata.parent / "initdb-password"
    if password is not None:
        pwfile.write_text(password + "\n", encoding="utf-8")
        pwfile.chmod(0o600)
        _owned_by_server(pwfile)
        auth = ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
    try:
        _run(
            [
                str(bindir / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                SUPERUSER,
                *auth,
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            stdout=subprocess.DEVNULL,
        )
    finally:
        pwfile.unlink(missing_ok=True)


def _trusting(pgdata: Path) -> bool:
    """Whether pg_hba.conf lets any connection in without a password."""
    for line in (pgdata / "pg_hba.conf").read_text(encoding="utf-8").splitlines():
        fields = line.split("#", 1)[0].split()
        if fields and fields[-1] in ("trust", "ident", "peer"):
            return True
    return False


def _require_password(bindir: Path, pgdata: Path, password: str) -> None:
    """Give a cluster made trusting (by an older version) the password, and make every
    connection need it. Done with the server stopped, in single-user mode: no connection is
    ever accepted without the password while it happens."""
    stop(pgdata.parent)
    _run(
        [str(bindir / "postgres"), "--single", "-D", str(pgdata), "postgres"],
        # One statement a line; the password is token_urlsafe (no quote can end the literal).
        input=(
            "SET password_encryption = 'scram-sha-256';\n"
            f"ALTER ROLE {SUPERUSER} PASSWORD '{password}';\n"
        ),
        text=True,
        stdout=subprocess.DEVNULL,
    )
    hba = pgdata / "pg_hba.conf"
    hba.write_text(SCRAM_ONLY_HBA, encoding="utf-8")
    hba.chmod(0o600)
    _owned_by_server(hba)


def _running(bindir: Path, pgdata: Path) -> bool:
    status = subprocess.run(
        _as_owner([str(bindir / "pg_ctl"), "status", "-D", str(pgdata)]),
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return status.returncode == 0


def _start(bindir: Path, pgdata: Path, port: int, settings: tuple[str, ...], log: Path) -> None:
    # TCP on loopback only and no Unix socket: /var/run/postgresql may belong to a system server,
    # and a socket inside a deep project path can exceed the 107-byte socket path limit.
    options = [
        "-c listen_addresses=127.0.0.1",
        f"-c port={port}",
        "-c unix_socket_directories=''",
        "-c max_connections=200",
        *(f"-c {s}" for s in settings),
    ]
    _run(
        [
            str(bindir / "pg_ctl"),
            "start",
            "-D",
            str(pgdata),
            "-w",
            "-t",
            "60",
            "-l",
            str(log),
            "-o",
            " ".join(options),
        ],
        stdout=subprocess.DEVNULL,
    )


def _wait_ready(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise ClusterError(f"PostgreSQL did not accept connections on 127.0.0.1:{port}.")


def _create_database(port: int, name: str, password: str | None = None) -> None:
    import psycopg  # imported late: the module is also used before dependencies exist

    with psycopg.connect(
        host="127.0.0.1",
        port=port,
        user=SUPERUSER,
        password=password,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def url_for(port: int, dbname: str = DB_NAME, password: str | None = None) -> str:
    """The SQLAlchemy URL of a database in a cluster started here (with its password, for
    the `make run` cluster)."""
    user = SUPERUSER if password is None else f"{SUPERUSER}:{quote(password, safe='')}"
    return f"postgresql+psycopg://{user}@127.0.0.1:{port}/{dbname}"


def start(datadir: Path, *, settings: tuple[str, ...] = (), password: str | None = None) -> int:
    """Initialise (first time) and start the cluster in `datadir`; return its port. With
    `password` every connection must give it (a trusting cluster is converted first); without,
    the cluster trusts loopback (the throwaway one: see the module docstring)."""
    bindir = ensure_server_binaries()
    datadir = datadir.resolve()
    pgdata = datadir / "data"
    port_file = datadir / "port"
    _prepare_dir(datadir)
    if not (pgdata / "PG_VERSION").exists():
        _initdb(bindir, pgdata, password)
    elif password is not None and _trusting(pgdata):
        _require_password(bindir, pgdata, password)
    if _running(bindir, pgdata) and port_file.exists():
        port = int(port_file.read_text())
        _wait_ready(port)
        return port
    port = int(port_file.read_text()) if port_file.exists() else 0
    if not port or not _port_is_free(port):
        port = free_port()
    _start(bindir, pgdata, port, settings, datadir / "postgres.log")
    port_file.write_text(str(port))
    _wait_ready(port)
    _create_database(port, DB_NAME, password)
    return port


def stop(datadir: Path, mode: str = "fast") -> None:
    """Stop the cluster in `datadir` if it runs (fast shutdown: sessions are ended;
    `immediate` is what a crash looks like to the next start)."""
    bindir = find_bindir()
    pgdata = datadir.resolve() / "data"
    if bindir and pgdata.exists() and _running(bindir, pgdata):
        _run(
            [str(bindir / "pg_ctl"), "stop", "-D", str(pgdata), "-m", mode, "-w"],
            stdout=subprocess.DEVNULL,
        )


def restart(datadir: Path, *, down_seconds: float = 0.0) -> None:
    """Stop the cluster (fast: sessions are cut), stay down a while, start it on the same port.

    Used by fault tests: a database restart under load.
    """
    datadir = datadir.resolve()
    port = int((datadir / "port").read_text())
    stop(datadir)
    time.sleep(down_seconds)
    bindir = ensure_server_binaries()
    _start(bindir, datadir / "data", port, THROWAWAY_SETTINGS, datadir / "postgres.log")
    _wait_ready(port)


@contextlib.contextmanager
def throwaway_cluster_at() -> Iterator[tuple[Path, int]]:
    """Start a disposable cluster (fsync off); yield (folder, port); delete it afterwards."""
    datadir = Path(tempfile.mkdtemp(prefix="booking-service-pg-"))
    try:
        port = start(datadir, settings=THROWAWAY_SETTINGS)
        yield datadir, port
    finally:
        try:
            stop(datadir)
        finally:
            shutil.rmtree(datadir, ignore_errors=True)


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[int]:
    """Start a disposable cluster (fsync off) and yield its port; delete it afterwards."""
    with throwaway_cluster_at() as (_, port):
        yield port
