"""The production stack for end-to-end tests: nginx -> gunicorn -> PostgreSQL, as deployed.

`Stack` runs Debian's nginx with a test copy of deploy/nginx.conf in front of gunicorn started
with deploy/gunicorn.conf.py, both on free loopback ports, against a database the caller
provides. Everything is a real process reached over real sockets, so what the tests see is what
VAPI would see. Every process started here is stopped again, and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

from booking_service.devtools.pgcluster import free_port

ROOT = Path(__file__).resolve().parents[2]
SITE_CONF = ROOT / "deploy" / "nginx.conf"
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
FIXTURES = ROOT / "tests" / "fixtures" / "vapi"
# The virtualenv running the tests also holds gunicorn and flask.
VENV_BIN = Path(sys.executable).parent
NGINX = Path("/usr/sbin/nginx")

# Small, fixed sizes keep start-up fast and make "requests in flight" easy to reason about.
GUNICORN_WORKERS = 2
GUNICORN_THREADS = 4
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0  # above gunicorn's graceful_timeout (10 s)
APT_TIMEOUT_S = 600.0
INHERITED_ENV = frozenset({"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR"})


class NginxUnavailable(RuntimeError):
    """nginx is missing and cannot be installed here; the message says how to get it."""


# --- nginx binary ------------------------------------------------------------------------


def ensure_nginx() -> Path:
    """Return Debian's nginx binary, installing nginx-light with apt-get when root.

    apt-get may exit non-zero although the binary got installed (the package's postinst tries
    to start the system service, which fails when port 80 is taken), so success is judged by
    the binary being there.
    """
    if NGINX.exists():
        return NGINX
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise NginxUnavailable(
            f"{NGINX} is missing: the end-to-end stack test needs Debian's nginx. Install it with "
            "`sudo apt-get install nginx-light` (or `nginx`), or run `make test` as root."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    outputs = [_apt(["apt-get", "update", "-q"], env)]
    for package in ("nginx-light", "nginx"):  # nginx-light is enough; newer releases fold it
        outputs.append(
            _apt(["apt-get", "install", "-y", "-q", "--no-install-recommends", package], env)
        )
        if NGINX.exists():
            return NGINX
    raise NginxUnavailable("apt-get could not install nginx:\n" + "\n".join(outputs)[-3000:])


def _apt(cmd: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=APT_TIMEOUT_S,
        check=False,
    )
    return f"$ {' '.join(cmd)} -> {result.returncode}\n{result.stdout[-1500:]}{result.stderr}"


# --- nginx configuration -----------------------------------------------------------------


def site_for_test(
    site: str,
    *,
    upstream_port: int,
    listen_port: int,
    log_dir: Path,
    redirect_port: int | None = None,
) -> str:
    """deploy/nginx.conf with only the addresses and log folder changed.

    The TLS server (`listen 443 ssl`) is served as plain HTTP on `listen_port` without its
    certificate lines (the tests have no certificate; everything else in it is kept), the
    plain-HTTP redirect server on `redirect_port` (a free port unless given); IPv6 listens go.
    Fails loudly when the production file no longer has what is replaced, so the test cannot
    silently run a different configuration.
    """
    site, upstreams = re.subn(
        r"^(\s*server\s+)127\.0\.0\.1:8000(\s*;)",
        rf"\g<1>127.0.0.1:{upstream_port}\g<2>",
        site,
        flags=re.MULTILINE,
    )
    if upstreams != 1:
        raise ValueError(f"{SITE_CONF} must have one upstream `server 127.0.0.1:8000;`")
    has_tls = re.search(r"^\s*listen\s+[^;]*\bssl\b[^;]*;", site, flags=re.MULTILINE)
    seen = {"main": 0, "redirect": 0}

    def one_loopback_listen(match: re.Match) -> str:
        # One IPv4 listen per server on loopback; the others (e.g. [::]:80) would clash.
        directive = match.group(0)
        if "[::]" in directive:
            return ""
        role = "main" if not has_tls or re.search(r"\bssl\b", directive) else "redirect"
        seen[role] += 1
        if seen[role] > 1:
            return ""
        port = listen_port if role == "main" else (redirect_port or free_port())
        return f"{match.group(1)}listen 127.0.0.1:{port};"

    site = re.sub(r"^(\s*)listen\s+[^;]*;", one_loopback_listen, site, flags=re.MULTILINE)
    if not seen["main"]:
        raise ValueError(f"{SITE_CONF} has no active `listen` directive")
    site = re.sub(r"^\s*ssl_certificate(_key)?\s[^;]*;\n", "", site, flags=re.MULTILINE)
    return site.replace("/var/log/nginx/", f"{log_dir}/")


def main_conf(site: str, prefix: Path) -> str:
    """A minimal top-level nginx.conf around the site, keeping every file inside `prefix`."""
    return f"""# Generated by tests/support/stack.py for one test run.
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{
    worker_connections 256;
}}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/spool/client_body;
    proxy_temp_path {prefix}/spool/proxy;
    fastcgi_temp_path {prefix}/spool/fastcgi;
    uwsgi_temp_path {prefix}/spool/uwsgi;
    scgi_temp_path {prefix}/spool/scgi;
    default_type application/octet-stream;

{site}
}}
"""


# --- processes ---------------------------------------------------------------------------


@dataclass
class Service:
    """A process we started, with its combined output in a log file."""

    name: str
    proc: subprocess.Popen
    log: Path

    @classmethod
    def start(cls, name: str, cmd: list[str], log: Path, **kwargs: Any) -> Service:
        with log.open("ab") as out:
            # A session of its own: whatever the process forks can be ended with it, and a
            # Ctrl-C meant for pytest is not delivered to it as well.
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **kwargs,
            )
        return cls(name, proc, log)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def send(self, sig: signal.Signals) -> None:
        if self.running:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None when the process is still running after `timeout`."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> None:
        """Ask politely; after `timeout` kill the master and its workers. Always reaps.

        Both masters stop their workers before exiting, so the group is killed only when the
        master is stuck: it is not reaped then, so its group id cannot belong to anyone else.
        """
        self.send(sig)
        if self.wait(timeout) is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log_text(self, since: int = 0) -> str:
        """The log from byte offset `since` on."""
        with self.log.open("rb") as log:
            log.seek(since)
            return log.read().decode(errors="replace")

    def log_size(self) -> int:
        return self.log.stat().st_size

    def tail(self, chars: int = 4000) -> str:
        return tail(self.log, self.name, chars)


def tail(path: Path, name: str, chars: int = 4000) -> str:
    """The end of a log file, headed by its name (for assertion messages)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        text = "(no log)"
    return f"--- {name} ({path}) ---\n{text[-chars:]}"


def wait_until(check: Callable[[], bool], timeout: float, what: str, *logs: Service) -> None:
    """Poll `check` until it is true; fail with `what` and the services' logs after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} (after {timeout:.0f} s)\n" + "\n".join(s.tail() for s in logs))


# --- HTTP --------------------------------------------------------------------------------


@dataclass
class Reply:
    """A complete HTTP answer, read and closed."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def http(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Reply:
    """One request to 127.0.0.1:`port` on a fresh connection, closed before returning."""
    conn = HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def answers_200(port: int, path: str) -> bool:
    try:
        return http(port, "GET", path, timeout=2).status == 200
    except OSError:
        return False


# --- payloads ----------------------------------------------------------------------------


def load_payload(
    name: str,
    starts: Iterable[str],
    *,
    call_id: str | None = None,
    tool_call_ids: Iterable[str] | None = None,
    customer: str | None = None,
    arguments: dict[str, Any] | None = None,
) -> dict:
    """A shared VAPI fixture with its tool calls rewritten, consistently in every copy.

    VAPI repeats each tool call in toolCallList, toolCalls and toolWithToolCallList; the n-th
    distinct tool call gets the n-th start (the files' own dates age) and, when given, the
    n-th tool call id and extra `arguments`. `call_id` replaces the VAPI call id (the app
    limits changes per call) and `customer` the caller's number.
    """
    body = json.loads((FIXTURES / name).read_text())
    message = body["message"]
    starts = iter(starts)
    new_ids = iter(tool_call_ids) if tool_call_ids is not None else None
    plan: dict[Any, tuple[str, Any]] = {}

    def rewrite(call: dict) -> None:
        if call["id"] not in plan:
            plan[call["id"]] = (next(starts), next(new_ids) if new_ids else call["id"])
        start, new_id = plan[call["id"]]
        call["id"] = new_id
        raw = call["function"]["arguments"]
        decoded = json.loads(raw) if isinstance(raw, str) else raw
        decoded = {**decoded, **(arguments or {}), "start": start}
        call["function"]["arguments"] = json.dumps(decoded) if isinstance(raw, str) else decoded

    for call in _tool_calls(message):
        rewrite(call)
    if call_id is not None:
        message["call"]["id"] = call_id
    if customer is not None:
        for holder in (message, message.get("call", {})):
            if isinstance(holder.get("customer"), dict):
                holder["customer"]["number"] = customer
    return body


def tool_call_ids(body: dict) -> list:
    """The ids the app answers, in order (toolCallList, else the legacy toolCalls)."""
    message = body["message"]
    calls = message.get("toolCallList", message.get("toolCalls", []))
    return [call["id"] for call in calls]


def _tool_calls(node: Any) -> Iterable[dict]:
    """Every tool-call object (a dict with function.arguments) anywhere below `node`."""
    if isinstance(node, dict):
        function = node.get("function")
        if isinstance(function, dict) and "arguments" in function and "id" in node:
            yield node
        for value in node.values():
            yield from _tool_calls(value)
    elif isinstance(node, list):
        for value in node:
            yield from _tool_calls(value)


# --- the stack ---------------------------------------------------------------------------


@dataclass
class Stack:
    """nginx in front of gunicorn in front of `database_url`, on loopback ports."""

    nginx_bin: Path
    database_url: str
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="booking-stack-")))
    # What gunicorn serves: the service (`make bench` also serves its HTTP floor app).
    app_spec: str = "wsgi:app"
    gunicorn_port: int = field(default_factory=free_port)
    nginx_port: int = field(default_factory=free_port)
    # deploy/nginx.conf's port-80 server, which only redirects to HTTPS.
    redirect_port: int = field(default_factory=free_port)
    gunicorn: Service | None = None
    nginx: Service | None = None
    # Settings for every service of this stack (e.g. DB_POOLER), over the defaults.
    extra_env: dict[str, str] = field(default_factory=dict)
    # Exact-text changes to deploy/nginx.conf for one test (e.g. a shorter proxy_read_timeout);
    # each must be found, so a test never runs a site that silently differs.
    site_changes: dict[str, str] = field(default_factory=dict)
    # More "hosts" behind the same nginx upstream: gunicorn instances on these ports.
    extra_upstreams: list[int] = field(default_factory=list)
    extra_gunicorns: list[Service] = field(default_factory=list)
    # The metrics files of the (main) gunicorn now running.
    metrics_dir: Path | None = None
    _starts: int = 0

    def __post_init__(self) -> None:
        # nginx's workers drop root privileges (to nobody) and must reach their temp folders.
        self.workdir.chmod(0o711)

    @property
    def services(self) -> list[Service]:
        return [s for s in (self.nginx, self.gunicorn, *self.extra_gunicorns) if s is not None]

    def env(self) -> dict[str, str]:
        """The services' environment: this stack's database and the defaults for the rest.

        Only basics are inherited, so that settings exported in the developer's shell
        (MAX_BODY_BYTES, GUNICORN_*, ...) cannot change what is tested.
        """
        env = {key: value for key, value in os.environ.items() if key in INHERITED_ENV}
        env.update(
            DATABASE_URL=self.database_url,
            GUNICORN_WORKERS=str(GUNICORN_WORKERS),
            GUNICORN_THREADS=str(GUNICORN_THREADS),
            LOG_LEVEL="INFO",
            # The same key as the tests' in-process apps: what one seals, the other opens.
            SECRET_KEY="test-secret-key-" + "0" * 24,
        )
        env.update(self.extra_env)
        return env

    def start(self) -> Stack:
        try:
            self.start_gunicorn()
            self.start_nginx()
        except BaseException:
            self.stop()
            raise
        return self

    def start_gunicorn(self) -> None:
        """Start (or restart) gunicorn with the production config and wait until it serves;
        then the extra hosts, if any."""
        if self.gunicorn is not None:
            self.gunicorn.stop()
        self.gunicorn = self._start_gunicorn(self.gunicorn_port, "gunicorn")
        for port in self.extra_upstreams[len(self.extra_gunicorns) :]:
            self.extra_gunicorns.append(self._start_gunicorn(port, f"gunicorn-{port}"))

    def _start_gunicorn(self, port: int, name: str) -> Service:
        self._starts += 1
        env = self.env()
        # Metrics files of one server run; the folder must be empty when gunicorn starts.
        metrics = self.workdir / f"metrics-{self._starts}"
        metrics.mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
        cmd = [
            str(VENV_BIN / "gunicorn"),
            "-c",
            str(GUNICORN_CONF),
            "--bind",
            f"127.0.0.1:{port}",
            self.app_spec,
        ]
        gunicorn = Service.start(name, cmd, self.workdir / f"{name}.log", cwd=ROOT, env=env)
        if port == self.gunicorn_port:
            self.metrics_dir = metrics
        wait_until(
            lambda: not gunicorn.running or answers_200(port, "/api/health"),
            START_TIMEOUT_S,
            "gunicorn did not become healthy",
            gunicorn,
        )
        if not gunicorn.running:
            raise RuntimeError("gunicorn exited during start-up\n" + gunicorn.tail())
        return gunicorn

    def start_nginx(self) -> None:
        """Check and start nginx in the foreground with the test copy of the site."""
        site = site_for_test(
            SITE_CONF.read_text(),
            upstream_port=self.gunicorn_port,
            listen_port=self.nginx_port,
            log_dir=self.workdir,
            redirect_port=self.redirect_port,
        )
        for old, new in self.site_changes.items():
            if old not in site:
                raise ValueError(f"{SITE_CONF} no longer has {old!r}")
            site = site.replace(old, new)
        ours = f"server 127.0.0.1:{self.gunicorn_port};"
        for port in self.extra_upstreams:
            site = site.replace(ours, f"{ours}\n    server 127.0.0.1:{port};", 1)
        conf = self.workdir / "nginx.conf"
        conf.write_text(main_conf(site, self.workdir))
        (self.workdir / "spool").mkdir(exist_ok=True)
        # -e: even errors before the configuration is read stay out of /var/log/nginx.
        base = [str(self.nginx_bin), "-p", f"{self.workdir}/", "-e", "error.log", "-c", str(conf)]
        checked = subprocess.run(
            [*base, "-t"], capture_output=True, text=True, timeout=30, check=False
        )
        if checked.returncode != 0:
            raise RuntimeError(f"nginx rejects the configuration:\n{checked.stderr}")
        self.nginx = Service.start(
            "nginx", [*base, "-g", "daemon off;"], self.workdir / "nginx.out", cwd=self.workdir
        )
        nginx = self.nginx
        wait_until(
            lambda: not nginx.running or answers_200(self.nginx_port, "/api/health"),
            START_TIMEOUT_S,
            "nginx did not pass /api/health through",
            nginx,
            *self.services,
        )
        if not nginx.running:
            raise RuntimeError("nginx exited during start-up\n" + self.logs())

    def ensure_gunicorn(self) -> None:
        """Restart gunicorn if a test stopped it (nginx keeps running and reconnects)."""
        if self.gunicorn is None or not self.gunicorn.running:
            self.start_gunicorn()

    def stop(self) -> None:
        """Stop nginx, then gunicorn, and remove the work folder (logs included)."""
        try:
            for service in self.services:
                service.stop()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def logs(self) -> str:
        """The tails of every log, for assertion messages."""
        return "\n".join(
            [
                *(service.tail() for service in self.services),
                tail(self.workdir / "error.log", "nginx error.log"),
            ]
        )

    def post(self, path: str, body: dict, headers: dict[str, str], timeout: float = 30) -> Reply:
        """POST JSON through nginx."""
        return http(
            self.nginx_port,
            "POST",
            path,
            json.dumps(body).encode(),
            {"Content-Type": "application/json", **headers},
            timeout=timeout,
        )

    def flask(self, *args: str) -> subprocess.CompletedProcess:
        """Run the service's flask CLI against this stack's database."""
        return subprocess.run(
            [str(VENV_BIN / "flask"), "--app", "wsgi", *args],
            cwd=ROOT,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def psycopg_conninfo(database_url: str) -> str:
    """The libpq form of a SQLAlchemy `postgresql+psycopg://` URL."""
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)
