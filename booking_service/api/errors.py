"""One JSON error envelope for every HTTP error; internals never leave the process."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)


def error_response(status: int, message: str):
    """{"error": {"status": N, "message": "..."}} with the given status."""
    response = jsonify({"error": {"status": status, "message": message}})
    response.status_code = status
    return response


_MESSAGES = {
    400: "The request could not be read.",
    401: "Missing or invalid credentials.",
    404: "Not found.",
    405: "Method not allowed.",
    413: "The request body is too large.",
}


def register_error_handlers(
    app: Flask,
    pages: tuple[str, Callable[[int], Response]] | None = None,
    problems: tuple[str, Callable[[int], Response]] | None = None,
) -> None:
    """Answer HTTP errors with the JSON envelope; log unexpected ones with a traceback.
    `pages`: (path prefix, page maker) for a part of the site that answers with HTML pages;
    `problems`: the same for a part that answers with problem documents (/api/v1)."""

    def _for(part: tuple[str, Callable[[int], Response]] | None) -> bool:
        return part is not None and (request.path + "/").startswith(part[0] + "/")

    def _for_pages() -> bool:
        return _for(pages)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        if pages is not None and _for_pages():
            return pages[1](status)
        if problems is not None and _for(problems):
            return problems[1](status)
        return error_response(status, _MESSAGES.get(status, exc.name))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if isinstance(exc, HTTPException):  # pragma: no cover - handled above
            return _http_error(exc)
        if app.testing:
            # Bugs must fail tests instead of hiding behind a friendly 500.
            raise exc
        log.exception("unhandled error")
        if pages is not None and _for_pages():
            return pages[1](500)
        if problems is not None and _for(problems):
            return problems[1](500)
        return error_response(500, InternalServerError.description)
