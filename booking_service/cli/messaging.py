"""Messaging commands: SMS and email settings, the list of messages, re-sealing."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup, with_appcontext

from booking_service.cli.common import echo, expected_errors
from booking_service.runtime.extensions import runtime
from booking_service.use_cases.messaging import configure_email, configure_sms, listing
from booking_service.use_cases.secrets import reseal_all

notifications_cli = AppGroup("notifications", help="Confirmations and reminders sent to callers.")
secrets_cli = AppGroup("secrets", help="Stored provider credentials.")


# Subcommands of `org` (registered there by cli/__init__.py).
@click.command("sms")
@click.argument("org_id", type=int)
@click.option("--account-sid", help="Twilio account SID (AC...).")
@click.option(
    "--auth-token",
    help='Twilio auth token (stored sealed with SECRET_KEY); "-" reads it from standard input, '
    "which keeps it out of the process list and the shell history.",
)
@click.option("--from", "sms_from", help="Sending number, in + form.")
@click.option("--messaging-service-sid", help="Or a Twilio Messaging Service (MG...).")
@click.option(
    "--countries",
    help="Send SMS only to numbers of these countries, e.g. US,CA (default: the phone region).",
)
@click.option("--disable", is_flag=True, help="Stop sending SMS.")
@with_appcontext
@expected_errors
def org_sms(org_id, account_sid, auth_token, sms_from, messaging_service_sid, countries, disable):
    """Send confirmations and reminders by SMS through Twilio; prints the messaging settings
    (never the token)."""
    if auth_token == "-":  # noqa: S105 - "-" means standard input, not a password
        auth_token = sys.stdin.readline().strip()
    rt = runtime()
    echo(
        configure_sms(
            rt.uow(),
            org_id,
            account_sid=account_sid,
            auth_token=auth_token,
            sms_from=sms_from,
            messaging_service_sid=messaging_service_sid,
            countries=countries,
            disable=disable,
        )
    )


@click.command("email")
@click.argument("org_id", type=int)
@click.option("--from", "sender", help='From, e.g. "Bright Smile <hello@example.com>".')
@click.option("--reply-to", help="Reply-To address.")
@click.option("--disable", is_flag=True, help="Stop sending email.")
@with_appcontext
@expected_errors
def org_email(org_id, sender, reply_to, disable):
    """Send confirmations (with a calendar invitation) and reminders by email through
    SMTP_URL; prints the messaging settings."""
    echo(
        configure_email(runtime().uow(), org_id, sender=sender, reply_to=reply_to, disable=disable)
    )


@notifications_cli.command("list")
@click.argument("org_id", type=int)
@click.option("--reference", help="Only this appointment's messages.")
@expected_errors
def notifications_list(org_id, reference):
    """Print the organization's messages as JSON lines: kind, channel, to (masked), due_at,
    status, provider_id, sent_at, error."""
    for row in listing(runtime().uow(), org_id, reference):
        echo(row)


@secrets_cli.command("reseal")
@expected_errors
def secrets_reseal():
    """Re-seal every stored secret (Twilio auth tokens, webhook signing secrets, VAPI HMAC
    keys, calendar passwords) under the current SECRET_KEY: after a rotation (the old key in
    SECRET_KEY_PREVIOUS until this has run), and once after upgrading, to seal webhook secrets
    stored before sealing existed."""
    echo(reseal_all(runtime().uow()))
