"""The voice platforms beside VAPI's bearer secret: `org retell|elevenlabs|vapi ORG_ID` store
what each platform needs, `retell tools` and `elevenlabs tools` print what to paste there.

Keys given as "-" are read from standard input (out of the process list and shell history);
they are stored sealed and never printed.
"""

from __future__ import annotations

import json
import sys

import click
from flask.cli import AppGroup, with_appcontext

from booking_service.cli.common import echo, expected_errors
from booking_service.domain.errors import InputError
from booking_service.runtime.extensions import runtime
from booking_service.use_cases.voice_platforms import PlatformSettings, update_platform_settings
from booking_service.voice.elevenlabs.definitions import SECRET_PLACEHOLDER, tool_configs
from booking_service.voice.retell.definitions import tool_definitions as retell_definitions

retell_cli = AppGroup("retell", help="What to paste into Retell.")
elevenlabs_cli = AppGroup("elevenlabs", help="What to paste into ElevenLabs.")


def settings_json(settings: PlatformSettings) -> dict:
    """The settings as the CLI shows them: whether each key is set, never the key."""
    return {
        "id": settings.org_id,
        "retell_api_key": "set" if settings.retell_api_key else None,
        "elevenlabs_webhook_secret": "set" if settings.elevenlabs_webhook_secret else None,
        "vapi_assistant_id": settings.vapi_assistant_id,
        "keep_recordings": settings.keep_recordings,
    }


def _read(value: str | None, field: str, disable: bool) -> str | None:
    """The key given (from standard input for "-"); one of it and --disable is required."""
    if disable:
        return None
    if value == "-":
        value = sys.stdin.readline().strip()
    if not value:
        raise InputError(field, "is required (or --disable)")
    return value


@click.command("retell")
@click.argument("org_id", type=int)
@click.option(
    "--api-key",
    help='The Retell API key with the webhook badge (it signs Retell\'s requests); "-" reads it '
    "from standard input.",
)
@click.option("--disable", is_flag=True, help="Forget the key: Retell requests are refused.")
@with_appcontext
@expected_errors
def org_retell(org_id: int, api_key: str | None, disable: bool):
    """Accept Retell custom functions at /api/retell/ORG_ID/tools, signed with this key."""
    settings = update_platform_settings(
        runtime().uow(),
        org_id,
        retell_api_key=_read(api_key, "api_key", disable),
        clear=("retell_api_key",) if disable else (),
    )
    echo({**settings_json(settings), "tools_path": f"/api/retell/{org_id}/tools"})


@click.command("elevenlabs")
@click.argument("org_id", type=int)
@click.option(
    "--webhook-secret",
    help='The post-call webhook\'s HMAC secret from ElevenLabs; "-" reads it from standard input.',
)
@click.option("--disable", is_flag=True, help="Forget the secret: post-call webhooks are refused.")
@with_appcontext
@expected_errors
def org_elevenlabs(org_id: int, webhook_secret: str | None, disable: bool):
    """Accept ElevenLabs post-call webhooks at /api/elevenlabs/ORG_ID/events, signed with this
    secret (tool calls use the organization's bearer secret)."""
    settings = update_platform_settings(
        runtime().uow(),
        org_id,
        elevenlabs_webhook_secret=_read(webhook_secret, "webhook_secret", disable),
        clear=("elevenlabs_webhook_secret",) if disable else (),
    )
    echo({**settings_json(settings), "events_path": f"/api/elevenlabs/{org_id}/events"})


@click.command("vapi")
@click.argument("org_id", type=int)
@click.option(
    "--assistant-id",
    help="Answer VAPI's assistant-request with this assistant and the business's date, time "
    "and (for a verified caller) their next appointment.",
)
@click.option("--disable", is_flag=True, help="Stop answering assistant-request.")
@with_appcontext
@expected_errors
def org_vapi(org_id: int, assistant_id: str | None, disable: bool):
    """Set the VAPI assistant that assistant-request is answered with."""
    settings = update_platform_settings(
        runtime().uow(),
        org_id,
        vapi_assistant_id=_read(assistant_id, "assistant_id", disable),
        clear=("vapi_assistant_id",) if disable else (),
    )
    echo(settings_json(settings))


@retell_cli.command("tools")
@click.option("--url", required=True, help="Public URL of POST /api/retell/ORG_ID/tools.")
def retell_tools(url: str):
    """Print the Retell custom-function definitions for every tool, ready to paste."""
    click.echo(json.dumps(retell_definitions(url), indent=2, ensure_ascii=False))


@elevenlabs_cli.command("tools")
@click.option(
    "--url", required=True, help="Public URL of /api/elevenlabs/tools (each tool adds its name)."
)
@click.option(
    "--secret-id",
    default=SECRET_PLACEHOLDER,
    show_default=True,
    help='The workspace secret holding "Bearer <the organization\'s secret>".',
)
def elevenlabs_tools(url: str, secret_id: str):
    """Print the ElevenLabs webhook tool configs for every tool, ready to paste."""
    click.echo(json.dumps(tool_configs(url, secret_id), indent=2, ensure_ascii=False))
