"""`flask --app wsgi apikey add|list|revoke`: keys of the public REST API (/api/v1). A key is
printed once, when it is made; only its hash is stored."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from booking_service.cli.common import echo, expected_errors
from booking_service.runtime.extensions import runtime
from booking_service.use_cases.api_keys import SCOPES, add_key, list_keys, revoke_key

apikey_cli = AppGroup("apikey", help="Keys of the REST API (/api/v1).")


@apikey_cli.command("add")
@click.argument("org_id", type=int)
@click.option(
    "--scope",
    "scope",
    required=True,
    help=f"Comma-separated scopes: {', '.join(SCOPES)}.",
)
@click.option("--name", default="", help="What the key is for (a website, a Zapier flow).")
@expected_errors
def apikey_add(org_id: int, scope: str, name: str):
    """Make a key for an organization; prints its id, scopes and the key, once.

    A website widget needs slots:read,bookings:write (it cannot read anyone's bookings)."""
    made = add_key(runtime().uow(), org_id, scope.split(","), name)
    echo(
        {
            "id": made.info.id,
            "name": made.info.name,
            "scopes": list(made.info.scopes),
            "key": made.key,
        }
    )


@apikey_cli.command("list")
@click.argument("org_id", type=int)
@expected_errors
def apikey_list(org_id: int):
    """List an organization's keys, revoked ones included (never a key or its hash)."""
    echo([info.as_json() for info in list_keys(runtime().uow(), org_id)])


@apikey_cli.command("revoke")
@click.argument("key_id", type=int)
@expected_errors
def apikey_revoke(key_id: int):
    """Revoke a key: from now on every request with it gets 401."""
    echo(revoke_key(runtime().uow(), key_id).as_json())


@apikey_cli.command("openapi")
def apikey_openapi():
    """Print the REST API's OpenAPI 3.1 document (what GET /api/v1/openapi.json serves);
    docs/openapi.json is this output, and a test keeps the two the same."""
    from booking_service.api.v1.openapi import document

    click.echo(json.dumps(document(), indent=2, ensure_ascii=False))
