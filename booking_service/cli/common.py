"""What every CLI command shares: JSON out, one line and exit 1 for an operator's mistake."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable

import click

from booking_service.domain.errors import (
    AppointmentNotMarkable,
    DatabaseUnavailable,
    InputError,
    NotFound,
)
from booking_service.persistence.secrets_box import SecretsUnavailable

# Fields whose flag is not `--` + the field's name with dashes.
_FLAGS = {"sms_from": "--from", "email_from": "--from", "scopes": "--scope"}


def input_error_text(exc: InputError) -> str:
    """An input error as the CLI says it: naming the flag the operator typed."""
    if exc.field is None:
        return exc.problem
    flag = _FLAGS.get(exc.field, "--" + exc.field.replace("_", "-"))
    return f"{flag} {exc.problem}"


def echo(payload: object) -> None:
    click.echo(json.dumps(payload, ensure_ascii=False))


def fail(message: str) -> None:
    click.echo(json.dumps({"error": message}), err=True)
    sys.exit(1)


def expected_errors(command: Callable) -> Callable:
    """Turn the errors an operator can cause into one JSON line on stderr and exit 1: no such
    organization, resource or user, invalid settings or account input, an unreachable
    database."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except NotFound as exc:
            key = "reference" if exc.what == "appointment" else "id"
            fail(f"no {exc.what} with {key} {exc.key}")
        except InputError as exc:
            fail(input_error_text(exc))
        except SecretsUnavailable as exc:
            fail(str(exc))
        except AppointmentNotMarkable as exc:
            fail(f"appointment {exc.reference} cannot be marked: {exc.why}")
        except DatabaseUnavailable:
            fail("the database is not reachable")

    return run
