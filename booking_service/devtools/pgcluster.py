"""A private PostgreSQL cluster for development (`make run`) and for the test suite.

Neither command may rely on a PostgreSQL server that happens to run on the machine, so both
start a cluster of their own with Debian's server binaries:

- `start DIR [--env-file .env]` initialises DIR on first use, starts it on a free loopback port
  (the same port again when it is still free) and prints the `DATABASE_URL` (and writes it to the
  .env that the flask CLI reads). Running it twice reuses the data. Every connection needs the
  password (scram-sha-256), generated on first use and kept in DIR/password (mode 600): any
  local user can reach a loopback port, and a trusting cluster would make each a superuser. A
  cluster made trusting by an older version gets its password on the next start.
- `stop DIR` stops it.
- `throwaway -- CMD ...` starts a disposable cluster (fsync off) in a temporary folder, runs CMD
  with `DATABASE_URL` and `BOOKING_TEST_PG` pointing at it, then stops and deletes it. It stays
  trust-only (the test suite's fixtures connect without a password): it listens on 127.0.0.1
  only, has no Unix socket, holds nothing but test data and is deleted when CMD ends.

This module is the command line, and the files `make run` keeps beside the data (password,
SECRET_KEY, .env); the cluster itself is managed by cluster.py, whose names are importable
from here too.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from pathlib import Path

from booking_service.devtools.cluster import (
    DB_NAME,
    SCRAM_ONLY_HBA,
    SUPERUSER,
    THROWAWAY_SETTINGS,
    ClusterError,
    ensure_server_binaries,
    find_bindir,
    free_port,
    restart,
    start,
    stop,
    throwaway_cluster,
    throwaway_cluster_at,
    url_for,
)

__all__ = [
    "DB_NAME",
    "ENV_FILE_MARKER",
    "SCRAM_ONLY_HBA",
    "SUPERUSER",
    "THROWAWAY_SETTINGS",
    "ClusterError",
    "ensure_server_binaries",
    "find_bindir",
    "free_port",
    "local_password",
    "local_secret_key",
    "main",
    "restart",
    "start",
    "stop",
    "throwaway_cluster",
    "throwaway_cluster_at",
    "url_for",
    "write_env_file",
]


ENV_FILE_MARKER = "# written by make run"


def write_env_file(path: Path, url: str, secret_key: str | None = None) -> bool:
    """Point the flask CLI and alembic of other terminals at this cluster.

    Writes `DATABASE_URL=url` (and `SECRET_KEY`) to `path` (a git-ignored .env, which the flask
    CLI loads through python-dotenv; variables already exported win). A file this did not write
    is the user's and is left alone: returns False then.
    """
    if path.exists():
        with path.open(encoding="utf-8") as existing:
            if not existing.readline().startswith(ENV_FILE_MARKER):
                return False
    lines = [
        f"{ENV_FILE_MARKER}: the project-local cluster, for flask and alembic in other terminals",
        f"DATABASE_URL={url}",
    ]
    if secret_key:
        lines.append(f"SECRET_KEY={secret_key}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return True


def local_secret_key(datadir: Path) -> str:
    """The development SECRET_KEY kept beside the cluster's data (made on first use): it seals
    the provider credentials stored in that data, so the two belong together."""
    path = datadir.resolve() / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


def local_password(datadir: Path) -> str:
    """The superuser password of the `make run` cluster in `datadir`, made on first use and
    kept beside its data (mode 600), so a second `make run` and the .env agree with it."""
    datadir.mkdir(parents=True, exist_ok=True)
    path = datadir.resolve() / "password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: start | stop | throwaway -- CMD."""
    parser = argparse.ArgumentParser(prog="python -m booking_service.devtools.pgcluster")
    sub = parser.add_subparsers(dest="action", required=True)
    p_start = sub.add_parser("start", help="start (and initialise) a persistent cluster")
    p_start.add_argument("datadir", type=Path)
    p_start.add_argument(
        "--env-file", type=Path, help="also write DATABASE_URL to this .env (make run: .env)"
    )
    p_stop = sub.add_parser("stop", help="stop a persistent cluster")
    p_stop.add_argument("datadir", type=Path)
    p_key = sub.add_parser("secret-key", help="print the cluster's development SECRET_KEY")
    p_key.add_argument("datadir", type=Path)
    p_throw = sub.add_parser("throwaway", help="run a command against a disposable cluster")
    p_throw.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            password = local_password(args.datadir)
            url = url_for(start(args.datadir, password=password), password=password)
            key = local_secret_key(args.datadir)
            if args.env_file and not write_env_file(args.env_file, url, key):
                print(
                    f"note: left {args.env_file} alone (not written by make run); for the CLI "
                    f"in other terminals, set DATABASE_URL={url} there",
                    file=sys.stderr,
                )
            print(url)
            return 0
        if args.action == "secret-key":
            print(local_secret_key(args.datadir))
            return 0
        if args.action == "stop":
            stop(args.datadir)
            return 0
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not command:
            parser.error("throwaway needs a command after --")
        with throwaway_cluster() as port:
            env = {
                **os.environ,
                "DATABASE_URL": url_for(port),
                "BOOKING_TEST_PG": f"127.0.0.1:{port}",
            }
            return subprocess.run(command, env=env, check=False).returncode
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"error: {' '.join(map(str, exc.cmd))} failed ({exc.returncode})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
