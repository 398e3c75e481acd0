"""`flask --app wsgi user add|list|reset-password|remove`: who may sign in to the owner's web
page. A password is printed once (generated unless --password-stdin gives one)."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from booking_service.cli.common import echo, expected_errors
from booking_service.runtime.extensions import runtime
from booking_service.use_cases.accounts import (
    ROLES,
    NewPassword,
    add_user,
    list_users,
    remove_user,
    reset_password,
)

user_cli = AppGroup("user", help="Users of the owner's web page (/app/).")


def _stdin_password(wanted: bool) -> str | None:
    if not wanted:
        return None
    # One line: a trailing newline from `echo` is not part of the password.
    return sys.stdin.readline().rstrip("\r\n")


def _shown(made: NewPassword) -> dict:
    return {**made.account.as_dict(), "password": made.password}


@user_cli.command("add")
@click.argument("org_id", type=int)
@click.option("--email", required=True, help="What the user signs in with (unique).")
@click.option("--role", type=click.Choice(ROLES), default="staff", show_default=True)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (12+ chars)."
)
@expected_errors
def user_add(org_id: int, email: str, role: str, password_stdin: bool):
    """Add a user of an organization; prints its id and the password, once.

    Owners change settings; staff work the diary."""
    made = add_user(runtime().uow(), org_id, email, role, _stdin_password(password_stdin))
    echo(_shown(made))


@user_cli.command("list")
@click.argument("org_id", type=int)
@expected_errors
def user_list(org_id: int):
    """List an organization's users (never a password or its hash)."""
    echo([account.as_dict() for account in list_users(runtime().uow(), org_id)])


@user_cli.command("reset-password")
@click.argument("user_id", type=int)
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@expected_errors
def user_reset_password(user_id: int, password_stdin: bool):
    """Give a user a new password (printed once); signs out all their sessions and lifts a
    sign-in lock on their email."""
    made = reset_password(runtime().uow(), user_id, _stdin_password(password_stdin))
    echo(_shown(made))


@user_cli.command("remove")
@click.argument("org_id", type=int)
@click.argument("user_id", type=int)
@expected_errors
def user_remove(org_id: int, user_id: int):
    """Remove a user of an organization (their sessions end at once)."""
    remove_user(runtime().uow(), org_id, user_id)
    echo({"removed": user_id})
