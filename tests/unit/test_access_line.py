"""gunicorn's access line as deploy/gunicorn.conf.py writes it: the same line gunicorn's own
logger writes, with secret paths redacted, built from only the atoms its format can name (#30)."""

from __future__ import annotations

import base64
import importlib.util
from datetime import timedelta
from pathlib import Path

import pytest
from gunicorn import glogging
from gunicorn.config import Config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def conf(monkeypatch, tmp_path):
    """The configuration module, loaded without touching this process's environment."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("LOG_FORMAT", "text")
    monkeypatch.setenv("MAX_CONCURRENT_PER_ORG", "3")
    monkeypatch.setattr(glogging.Logger, "now", lambda self: "[05/Dec/2026:12:00:00 +0000]")
    spec = importlib.util.spec_from_file_location(
        "conf_under_test", ROOT / "deploy/gunicorn.conf.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Response:
    status = "200 OK"
    sent = 312
    headers = (("Content-Type", "application/json"), ("X-Request-Id", "rid-1"))


class Request:
    headers = (
        ("HOST", "booking.example.com"),
        ("X-REQUEST-ID", "rid-1"),
        ("USER-AGENT", "vapi/1.0"),
        ("REFERER", "https://dashboard.vapi.ai/"),
        ("AUTHORIZATION", "Basic " + base64.b64encode(b"owner:pw").decode()),
    )


def environ(raw_uri: str) -> dict:
    env = {"HTTP_" + name.replace("-", "_"): value for name, value in Request.headers}
    path, _, query = raw_uri.partition("?")
    env.update(
        REQUEST_METHOD="POST",
        RAW_URI=raw_uri,
        PATH_INFO=path,
        QUERY_STRING=query,
        SERVER_PROTOCOL="HTTP/1.1",
        REMOTE_ADDR="127.0.0.1",
        REMOTE_PORT="50123",
        SERVER_NAME="127.0.0.1",
        SERVER_PORT="8000",
        SCRIPT_NAME="",
    )
    env["wsgi.url_scheme"] = "http"
    env["wsgi.input"] = object()
    return env


TOOK = timedelta(milliseconds=4, microseconds=321)
# Every atom gunicorn documents that names no header or environ entry.
PLAIN = (
    "h",
    "l",
    "u",
    "t",
    "r",
    "s",
    "m",
    "U",
    "q",
    "H",
    "b",
    "B",
    "f",
    "a",
    "T",
    "D",
    "M",
    "L",
    "p",
)
EVERY_PLAIN_ATOM = " ".join(f"%({atom})s" for atom in PLAIN)


@pytest.mark.parametrize("fmt", [Config().access_log_format, EVERY_PLAIN_ATOM])
def test_the_line_is_the_one_gunicorn_writes(conf, fmt):
    cfg = Config()
    cfg.set("access_log_format", fmt)
    ours = conf._RedactingLogger(cfg).atoms(Response, Request, environ("/api/vapi/tools?x=1"), TOOK)
    theirs = glogging.Logger(cfg).atoms(Response, Request, environ("/api/vapi/tools?x=1"), TOOK)

    line = fmt % glogging.SafeAtoms(ours)
    assert line == fmt % glogging.SafeAtoms(theirs)
    assert "owner" in line or "%(u)s" not in fmt  # the Basic user still comes from the header


def test_a_format_that_names_headers_still_gets_them(conf):
    cfg = Config()
    fmt = "%(r)s %({x-request-id}i)s %({content-type}o)s %({remote_port}e)s"
    cfg.set("access_log_format", fmt)
    atoms = conf._RedactingLogger(cfg).atoms(Response, Request, environ("/api/v1/x"), TOOK)

    assert fmt % glogging.SafeAtoms(atoms) == (
        "POST /api/v1/x HTTP/1.1 rid-1 application/json 50123"
    )


@pytest.mark.parametrize("fmt", [Config().access_log_format, "%(r)s %({remote_port}e)s"])
def test_feed_and_manage_tokens_are_redacted_either_way(conf, fmt):
    cfg = Config()
    cfg.set("access_log_format", fmt)
    logger = conf._RedactingLogger(cfg)
    for uri, shown in (("/ical/s3cr3t.ics", "/ical/[token]"), ("/b/t0k3n", "/b/[token]")):
        line = fmt % glogging.SafeAtoms(logger.atoms(Response, Request, environ(uri), TOOK))
        assert shown in line
        assert "s3cr3t" not in line and "t0k3n" not in line
