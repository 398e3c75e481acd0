"""Gunicorn settings for booking_service (used by `make run` and production).

Every value can be overridden from the environment; see the README's configuration table.
"""

import multiprocessing
import os
import tempfile

from gunicorn import glogging

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Requests mostly wait on PostgreSQL, so a few threads per worker use the cores well.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# One organization may use all but one of a worker's threads at once (the app answers the rest
# "please ask again in a moment"): another business's caller always finds a thread free.
os.environ.setdefault("MAX_CONCURRENT_PER_ORG", str(max(1, threads - 1)))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
# Heartbeat timeout: a worker silent this long is restarted. gthread workers keep beating while
# a request runs, so one slow request is bounded by statement/lock timeouts and REQUEST_BUDGET_S.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "15"))
# On TERM, workers stop accepting and finish in-flight requests for up to this long.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "10"))
keepalive = 5
# No app preloading: each worker builds its own engine, so no pooled connection crosses a fork.
preload_app = False
accesslog = "-"
errorlog = "-"


# What gunicorn's own atoms (h, u, r, m, U, q, H, f, a, ...) read of the environ; the rest of
# it, and the request's and response's headers, only feed `{name}e`, `{name}i` and `{name}o`.
_BASE_ENVIRON = (
    "REMOTE_ADDR",
    "REQUEST_METHOD",
    "RAW_URI",
    "SERVER_PROTOCOL",
    "PATH_INFO",
    "QUERY_STRING",
    "HTTP_REFERER",
    "HTTP_USER_AGENT",
    "HTTP_AUTHORIZATION",
)


class _StatusOnly:
    """A response as gunicorn's own atoms read it: its status and bytes sent, no headers."""

    __slots__ = ("headers", "sent", "status")

    def __init__(self, resp):
        self.status = resp.status
        self.sent = getattr(resp, "sent", None)
        self.headers = ()


class _RedactingLogger(glogging.Logger):
    """gunicorn's logger, with the ICS feed tokens taken out of access lines (the token in a
    feed URL is its credential; secrets are never logged)."""

    def atoms(self, resp, req, environ, request_time):
        from booking_service.runtime.logging_setup import redact_secret_paths

        if "{" not in self.cfg.access_log_format:
            # The format names no header or environ atom (the default names none): gunicorn
            # would still make an atom of every header and environ entry, and quote-escape each,
            # for every request, about 4% of a booking's Python under load (py-spy, #30).
            resp, req = _StatusOnly(resp), ()
            environ = {key: environ[key] for key in _BASE_ENVIRON if key in environ}
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U", "f"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact_secret_paths(atoms[key])
        return atoms


logger_class = _RedactingLogger
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# The control socket is a runtime management interface we do not use.
control_socket_disable = True

# Production logs are JSON lines unless told otherwise (the app reads LOG_FORMAT), and so are
# gunicorn's own error and access lines.
os.environ.setdefault("LOG_FORMAT", "json")
if os.environ["LOG_FORMAT"] == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            # The app's: the same fields, orjson-encoded with a fallback, masked tracebacks.
            "json": {"()": "booking_service.runtime.logging_setup.JsonFormatter"}
        },
        "handlers": {
            "error": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            },
        },
        # The app configures the root logger itself (booking_service.runtime.logging_setup).
        "root": {"level": loglevel.upper(), "handlers": []},
        "loggers": {
            "gunicorn.error": {
                "handlers": ["error"],
                "level": loglevel.upper(),
                "propagate": False,
            },
            "gunicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }
# Metrics from all workers are aggregated through files in this folder (prometheus_client's
# multiprocess mode); it must exist and be empty when the server starts.
_own_metrics_dir = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _own_metrics_dir = tempfile.mkdtemp(prefix="booking-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _own_metrics_dir


def on_starting(server):
    """Refuse to serve when the schema check fails (unless SCHEMA_CHECK_OVERRIDE is set), or
    when bound beyond loopback without METRICS_TOKEN."""
    from booking_service.runtime.startup import gate

    gate(binds=server.cfg.bind)


def post_worker_init(worker):
    """Freeze what loading the app created, so full garbage collections skip it.

    A worker holds some 100,000 long-lived objects from its imports (SQLAlchemy, marshmallow,
    phonenumbers). Collections of the oldest generation are rare on the booking path, but
    each walked them all and stalled its request for about 50 ms here; frozen, about 2 ms
    (`make profile PROFILE_ARGS="-n 3000 --freeze"` reports the collections it saw).
    """
    import gc

    gc.freeze()


def child_exit(server, worker):
    """A dead worker's live-gauge files must not count any more."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics folder this configuration created (not one given to it)."""
    if _own_metrics_dir:
        import shutil

        shutil.rmtree(_own_metrics_dir, ignore_errors=True)
