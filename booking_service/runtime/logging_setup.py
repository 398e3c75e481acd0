"""Logging: configured before the app exists, with request/call ids on every line.

Ids live in context variables so that service code logs them without passing them around.
A filter masks anything that looks like a phone number as a second line of defence; code
should already log numbers through normalize.mask_phone.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import logging.config
import re
import unicodedata
from collections.abc import Iterator

_FIELDS = ("request_id", "org_id", "call_id", "tool_call_id", "tool")
_context: dict[str, contextvars.ContextVar[str]] = {
    name: contextvars.ContextVar(name, default="-") for name in _FIELDS
}
# What people write between a phone number's digits: spaces, brackets, dots, dashes (also the
# Unicode and full-width ones), slashes, underscores. `\d` matches every script's digits, so
# full-width digits (U+FF10-FF19) make a number too.
_SEPARATOR = r"[\s().\-/_\u2010-\u2015\u2212\uff08\uff09\uff0d\uff0e\uff0f]"
# Dates, times and addresses are left as they are: they are what a log line is read for, and
# their digit runs are long enough to look like numbers. They are found first and the phone
# pattern looks only between them, so "resource 12 2026-12-01 09:00" keeps its date.
# Only real months, days, hours and address octets, standing alone (not inside a longer run of
# digits and dots): "4155-55-0111" is not a date, "06.12.34.56.78" not an address.
_TIME = r"(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:[.,]\d+)?)?"
_MONTH, _DAY = r"(?:0?[1-9]|1[0-2])", r"(?:0?[1-9]|[12]\d|3[01])"
_OCTET = r"(?:25[0-5]|2[0-4]\d|1?\d?\d)"
_HEX = "[0-9a-fA-F]"
_KEPT = re.compile(
    r"(?<![\d.])(?:"
    rf"{_HEX}{{8}}(?:-{_HEX}{{4}}){{3}}-{_HEX}{{12}}"  # a UUID: its digit runs are no number
    rf"|\d{{4}}-{_MONTH}-{_DAY}(?:[T ]{_TIME}(?:Z|[+-]{_TIME})?)?"  # 2026-12-01T09:00+01:00
    rf"|\d{{4}}/{_MONTH}/{_DAY}|{_DAY}/{_MONTH}/\d{{4}}"  # 2026/11/30, 30/11/2026
    rf"|{_TIME}"
    rf"|{_OCTET}(?:\.{_OCTET}){{3}}(?::\d{{1,5}})?"  # 127.0.0.1:8000
    r")(?![\d.])"
)
# Seven or more digits, however separated: the quick test every line takes first.
_PHONE_LIKE = re.compile(rf"[+\uff0b]?\d(?:{_SEPARATOR}*\d){{6,}}")
# What is masked: such a run that is not part of a longer token of letters and digits. A run
# glued to an ASCII letter or another digit is a piece of an id (a Twilio SID
# SM0123456789abcdef..., a hex event or request id), not a number someone wrote; other
# scripts' letters do not count, since Chinese or Japanese text puts a number right after a
# word. A percent-encoded plus (%2B in a query string) starts a number too. The lookahead only
# rejects an end glued to a letter or digit: backtracking then ends the run at an earlier
# separator, so in "4155550123 0123abc" the first number is still masked.
_PHONE = re.compile(
    rf"(?<![A-Za-z\d])(?:[+\uff0b]|%2[bB])?\d(?:{_SEPARATOR}*\d){{6,}}(?![A-Za-z\d])"
)


def _mask(match: re.Match) -> str:
    digits = [str(unicodedata.digit(ch)) for ch in match.group(0) if ch.isdigit()]
    return "***" + "".join(digits[-4:])


def mask_digits(text: str) -> str:
    """Mask every phone-like run of seven or more digits to its last four, however it is
    written (`+1 (415) 555-0111`, `+1/415/555/0111`, `+1_415_555_0111`, full-width digits);
    dates, times, IP addresses, UUIDs and digit runs inside ids (`SM0123456789abcdef`) stay
    readable."""
    # Most lines hold no phone-like run at all: one search settles them, where looking for
    # dates first costs ten times as much (every log line pays this). `_PHONE_LIKE` has no
    # anchors or lookarounds, and every match of `_PHONE` is a match of `_PHONE_LIKE` on the
    # same characters (the same run, at most with "%2B" in front), so when `_PHONE_LIKE` finds
    # nothing in the line, `_PHONE` finds nothing in any part of it either.
    if _PHONE_LIKE.search(text) is None:
        return text
    # Lines with ids (a hex event id, a SID) get past that; one search with `_PHONE` settles
    # them too, at a fifth of the cost of finding the dates. A number `_PHONE` would mask
    # between two kept items is one it finds in the whole line: the lookbehind sees the same
    # character either way (see _mask_between), and the lookahead the same one, since such a
    # number never ends where a kept item begins.
    if _PHONE.search(text) is None:
        return text
    parts: list[str] = []
    at = 0
    for kept in _KEPT.finditer(text):
        _mask_between(text, at, kept.start(), parts)
        parts.append(kept.group(0))
        at = kept.end()
    _mask_between(text, at, len(text), parts)
    return "".join(parts)


def _mask_between(text: str, start: int, end: int, parts: list[str]) -> None:
    """Append text[start:end] with its numbers masked. Searching the whole text within
    (start, end), not a slice, lets the lookbehind see the character before `start` as it is
    in the line. The lookahead never needs the character at `end`: a kept item is never
    preceded by a digit, and a run always ends with one."""
    at = start
    for match in _PHONE.finditer(text, start, end):
        parts.append(text[at : match.start()])
        parts.append(_mask(match))
        at = match.end()
    parts.append(text[at:end])


# A feed URL's token is its only credential (calendar apps send no headers).
# Everything after /ical/ goes, however it is spelled: a percent-encoded ".ics", and a
# percent-encoded letter or slash of "/ical/" itself (`/%69cal/`, `/ical%2F`), which the server
# decodes before routing, so it still reaches the feed.
_FEED_TOKEN = re.compile(
    r"/(?:i|%49|%69)(?:c|%43|%63)(?:a|%41|%61)(?:l|%4c|%6c)(?:/|%2f)[^\s?\"]*", re.IGNORECASE
)


# A caller's manage link (/b/<token>, #28) is a credential the same way.
_MANAGE_TOKEN = re.compile(r"/(?:b|%42|%62)(?:/|%2f)[^\s?\"]*", re.IGNORECASE)


def redact_secret_paths(text: str) -> str:
    """`/ical/<token>.ics` → `/ical/[token]`, `/b/<token>` → `/b/[token]`: access logs keep
    the request, not the key."""
    return _MANAGE_TOKEN.sub("/b/[token]", _FEED_TOKEN.sub("/ical/[token]", text))


# Attributes every LogRecord has: anything else on a record came from `extra=` (or from our
# ids), and may carry a caller's number as much as the message may.
# Our ids are not masked: they are how a log line is found (a request id like e2e-2142424c85cd
# has seven digits in a row), and none of them is taken from what a caller says.
_NOT_MASKED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", *_FIELDS}


class ContextFilter(logging.Filter):
    """Adds the current ids to each record and masks phone-like digit runs in the message and
    in every extra field (not in the ids)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _context.items():
            setattr(record, name, var.get())
        message = record.getMessage()
        masked = mask_digits(message)
        if masked != message:
            record.msg, record.args = masked, None
        fields = vars(record)
        for name in fields.keys() - _NOT_MASKED:  # only what `extra=` added: usually nothing
            value = fields[name]
            if value is None or isinstance(value, bool | float):
                continue
            shown = value if isinstance(value, str) else str(value)
            masked = mask_digits(shown)
            if masked != shown:  # a dict or a number holding a phone becomes its masked text
                setattr(record, name, masked)
        return True


class MaskingFormatter(logging.Formatter):
    """Also masks tracebacks: an exception's text may quote a caller's number."""

    def formatException(self, ei) -> str:
        return mask_digits(super().formatException(ei))


@contextlib.contextmanager
def log_context(**values: object) -> Iterator[None]:
    """Set ids (request_id, org_id, call_id, tool_call_id, tool) for the enclosed code."""
    tokens = []
    for name, value in values.items():
        if value is not None:
            tokens.append((_context[name], _context[name].set(str(value)[:80])))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


TEXT_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s org=%(org_id)s call=%(call_id)s "
    "tool_call=%(tool_call_id)s tool=%(tool)s] %(message)s"
)


_configured = False

# Client libraries that log every request at INFO: httpx the URL of each webhook (userinfo
# included), twilio ~11 lines per SMS with the body and both numbers, caldav and its HTTP stack
# (niquests, urllib3-future) each calendar request. Their warnings and errors still show; what
# they do on every call is ours to log, once, masked. Our own loggers keep LOG_LEVEL.
QUIET_LIBRARIES = (
    "httpx",
    "httpcore",
    "twilio",  # twilio.http_client, twilio.async_http_client
    "urllib3",
    "urllib3_future",
    "niquests",
    "requests",
    "caldav",
    "charset_normalizer",
    "hpack",
    "jh2",
    "qh3",
    "aiohttp",
)


JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(MaskingFormatter):
    """One JSON object per line (python-json-logger), with our ids and masked tracebacks.

    Encoded by orjson (python-json-logger's OrjsonFormatter: a line costs a sixth less than
    with the standard library, #30), which writes UTF-8 as it is; what orjson refuses (a lone
    surrogate a caller's text can carry) is encoded by the standard library instead, so that
    no line is lost."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        from pythonjsonlogger.json import JsonEncoder
        from pythonjsonlogger.orjson import OrjsonFormatter

        masking = self

        class _MaskedJson(OrjsonFormatter):
            # Tracebacks go through our masking (phone numbers in locals or messages).
            def formatException(self, ei) -> str:
                return masking.formatException(ei)

            def jsonify_log_record(self, log_data) -> str:
                try:
                    return super().jsonify_log_record(log_data)
                except TypeError:  # orjson.JSONEncodeError: surrogates, integers past 64 bits
                    # Escaped to ASCII, as before orjson: a lone surrogate written as it is
                    # would fail the write to a strict UTF-8 stream (a file, gunicorn's stdout).
                    return json.dumps(log_data, cls=JsonEncoder)

        self._json = _MaskedJson(
            JSON_FIELDS,
            rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
            timestamp=False,
        )

    def format(self, record: logging.LogRecord) -> str:
        return self._json.format(record)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once per process (dictConfig): one stream handler to stderr,
    and QUIET_LIBRARIES at WARNING whatever the level.

    Later calls only adjust the level, so apps built after the first (tests, CLI) keep the
    handlers already in place instead of replacing them.
    """
    global _configured
    if _configured:
        logging.getLogger().setLevel(level)
        return
    _configured = True
    # No format here names the caller's file, line or function, or the thread: the logging
    # HOWTO's "Optimization" switches spare every record a walk up the stack (findCaller) and
    # two lookups. The process id stays, for gunicorn's text lines. (A call with
    # stack_info=True then logs no stack; nothing here asks for one.)
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"context": {"()": ContextFilter}},
            "formatters": {
                "text": {"()": MaskingFormatter, "format": TEXT_FORMAT},
                "json": {"()": JsonFormatter},
            },
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "formatter": fmt,
                    "filters": ["context"],
                }
            },
            "loggers": {name: {"level": "WARNING"} for name in QUIET_LIBRARIES},
            "root": {"level": level, "handlers": ["stderr"]},
        }
    )
