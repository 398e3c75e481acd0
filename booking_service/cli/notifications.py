"""Messaging commands: SMS and email settings, the list of messages, no-shows, re-sealing."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup, with_appcontext

from booking_service.cli.common import echo, expected_errors
from booking_service.domain.times import utc_now
from booking_service.runtime.extensions import runtime
from booking_service.use_cases.appointments import OUTCOMES, mark_outcome
from booking_service.use_cases.notifications import configure_email, configure_sms, listing
from booking_service.use_cases.orgs import get_org

notifications_cli = AppGroup("notifications", help="Confirmations and reminders sent to callers.")
appointment_cli = AppGroup("appointment", help="Staff actions on one appointment.")
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


@appointment_cli.command("mark")
@click.argument("reference")
@click.option("--org", "org_id", type=int, required=True, help="The organization's id.")
@click.option("--completed", "outcome", flag_value="completed", help="It took place.")
@click.option("--no-show", "outcome", flag_value="no_show", help="The caller did not come.")
@expected_errors
def appointment_mark(reference, org_id, outcome):
    """Record how an appointment that has started went; sends appointment.completed or
    appointment.no_show to the webhooks."""
    if outcome not in OUTCOMES:
        raise click.UsageError("give --completed or --no-show")
    rt = runtime()
    org = get_org(rt.uow(), org_id)
    marked = mark_outcome(rt.uow(), org, reference, outcome, utc_now())
    echo({"reference": marked.reference, "status": outcome, "start": marked.starts_at.isoformat()})


@secrets_cli.command("reseal")
@expected_errors
def secrets_reseal():
    """Re-seal every stored secret (Twilio auth tokens, webhook signing secrets, VAPI HMAC
    keys, calendar passwords) under the current SECRET_KEY: after a rotation (the old key in
    SECRET_KEY_PREVIOUS until this has run), and once after upgrading, to seal webhook secrets
    stored before sealing existed."""
    rt = runtime()
    box = rt.secrets
    uow = rt.uow()
    with uow:
        tokens = uow.notifications.sealed_tokens()
        for org_id, sealed in tokens:
            uow.notifications.save_settings(org_id, {"twilio_auth_token": box.reseal(sealed)})
        keys = uow.organizations.hmac_keys()
        for org_id, key in keys:
            uow.organizations.set_hmac_key(org_id, box.reseal(key))
        endpoints = uow.outbox.all_endpoint_secrets()
        for endpoint_id, secret, previous in endpoints:
            uow.outbox.update_endpoint(
                endpoint_id,
                secret=box.reseal(secret),
                previous_secret=box.reseal(previous) if previous else None,
            )
        passwords = uow.calendars.all_passwords()
        for link_id, sealed in passwords:
            uow.calendars.update_link(link_id, password=box.reseal(sealed))
        uow.commit()
    echo(
        {
            "twilio_tokens": len(tokens),
            "webhook_endpoints": len(endpoints),
            "hmac_keys": len(keys),
            "calendar_passwords": len(passwords),
        }
    )
