"""Logging: configured before the app exists, with request/call ids on every line.

Ids live in context variables so that service code logs them without passing them around.
A filter masks anything that looks like a phone number as a second line of defence; code
should already log numbers through normalize.mask_phone.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import logging.config
import re
from collections.abc import Iterator

_FIELDS = ("request_id", "org_id", "call_id", "tool_call_id", "tool")
_context: dict[str, contextvars.ContextVar[str]] = {
    name: contextvars.ContextVar(name, default="-") for name in _FIELDS
}
_PHONE_LIKE = re.compile(r"\+?\d[\d ().-]{6,}\d")


def _mask(match: re.Match) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if len(digits) < 7:  # too short for a phone number (an IP address, a time, a count)
        return match.group(0)
    return "***" + digits[-4:]


def mask_digits(text: str) -> str:
    """Mask every phone-like run of digits to its last four."""
    return _PHONE_LIKE.sub(_mask, text)


class ContextFilter(logging.Filter):
    """Adds the current ids to each record and masks phone-like digit runs in the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _context.items():
            setattr(record, name, var.get())
        message = record.getMessage()
        masked = mask_digits(message)
        if masked != message:
            record.msg, record.args = masked, None
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


JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(MaskingFormatter):
    """One JSON object per line (python-json-logger), with our ids and masked tracebacks."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        from pythonjsonlogger.json import JsonFormatter as _Json

        masking = self

        class _MaskedJson(_Json):
            # Tracebacks go through our masking (phone numbers in locals or messages).
            def formatException(self, ei) -> str:
                return masking.formatException(ei)

        self._json = _MaskedJson(
            JSON_FIELDS,
            rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
            timestamp=False,
        )

    def format(self, record: logging.LogRecord) -> str:
        return self._json.format(record)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once per process (dictConfig): one stream handler to stderr.

    Later calls only adjust the level, so apps built after the first (tests, CLI) keep the
    handlers already in place instead of replacing them.
    """
    global _configured
    if _configured:
        logging.getLogger().setLevel(level)
        return
    _configured = True
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
            "root": {"level": level, "handlers": ["stderr"]},
        }
    )
