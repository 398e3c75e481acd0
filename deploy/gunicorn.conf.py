"""Gunicorn settings for booking_service (used by `make run` and production).

Every value can be overridden from the environment; see the README's configuration table.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Requests mostly wait on PostgreSQL, so a few threads per worker use the cores well.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
# Heartbeat timeout: a worker silent this long is restarted. gthread workers keep beating while
# a request runs, so one slow request is bounded by statement/lock timeouts and REQUEST_BUDGET_S.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "15"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "10"))
keepalive = 5
# No app preloading: each worker builds its own engine, so no pooled connection crosses a fork.
preload_app = False
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# The control socket is a runtime management interface we do not use.
control_socket_disable = True
