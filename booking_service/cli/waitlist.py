"""Waitlist commands (#29): who waits for a time, as the owner reads it."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from booking_service.cli.common import echo, expected_errors
from booking_service.runtime.extensions import runtime
from booking_service.use_cases.waitlist import listing

waitlist_cli = AppGroup("waitlist", help="Callers waiting for a time to open.")


@waitlist_cli.command("list")
@click.argument("org_id", type=int)
@expected_errors
def waitlist_list(org_id):
    """The organization's waitlist, one JSON line per entry in the order of joining: id, phone
    masked to its last 4 digits, window (local times), part of day, service or length, status
    (waiting, offered, booked, expired)."""
    for entry in listing(runtime().uow(), org_id):
        echo(entry)
