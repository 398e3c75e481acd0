"""`flask --app wsgi webhook ...` (where events go, and what was delivered) and
`flask --app wsgi worker` (the outbox worker)."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import click
from flask.cli import AppGroup, with_appcontext

from booking_service.cli.common import echo, expected_errors
from booking_service.domain.outbox import EVENT_TYPES
from booking_service.runtime.extensions import runtime
from booking_service.use_cases.webhooks import (
    add_endpoint,
    deliveries,
    list_endpoints,
    replay,
    set_enabled,
)
from booking_service.use_cases.webhooks import rotate_secret as rotate_webhook_secret
from booking_service.worker.loop import Worker

webhook_cli = AppGroup("webhook", help="Where an organization's events are sent, and what was.")

if TYPE_CHECKING:
    from booking_service.persistence.repositories.outbox import EndpointRow


def _endpoint_json(endpoint: EndpointRow) -> dict:
    return {
        "id": endpoint.id,
        "org_id": endpoint.org_id,
        "url": endpoint.url,
        "events": endpoint.events or list(EVENT_TYPES),
        "enabled": endpoint.disabled_at is None,
        "disabled_reason": endpoint.disabled_reason,
        "secret_rotating_until": (
            endpoint.previous_secret_expires_at.isoformat()
            if endpoint.previous_secret and endpoint.previous_secret_expires_at
            else None
        ),
    }


@webhook_cli.command("add")
@click.argument("org_id", type=int)
@click.option("--url", required=True, help="The receiver's URL (https://...).")
@click.option(
    "--event",
    "events",
    multiple=True,
    type=click.Choice(EVENT_TYPES),
    help="An event type to send (repeatable); all when none is named.",
)
@expected_errors
def webhook_add(org_id: int, url: str, events: tuple[str, ...]):
    """Send an organization's events to URL; prints the endpoint and its secret (shown once)."""
    rt = runtime()
    created = add_endpoint(
        rt.uow(),
        org_id,
        url,
        events,
        allow_private=rt.settings.webhook_allow_private_targets,
    )
    echo({**_endpoint_json(created.endpoint), "secret": created.secret})


@webhook_cli.command("list")
@click.argument("org_id", type=int)
@expected_errors
def webhook_list(org_id: int):
    """List an organization's endpoints (never their secrets)."""
    echo([_endpoint_json(e) for e in list_endpoints(runtime().uow(), org_id)])


@webhook_cli.command("disable")
@click.argument("endpoint_id", type=int)
@expected_errors
def webhook_disable(endpoint_id: int):
    """Stop sending to an endpoint; its deliveries wait until it is enabled again."""
    echo(_endpoint_json(set_enabled(runtime().uow(), endpoint_id, enabled=False)))


@webhook_cli.command("enable")
@click.argument("endpoint_id", type=int)
@expected_errors
def webhook_enable(endpoint_id: int):
    """Send to an endpoint again (also after a 410 disabled it); waiting deliveries resume."""
    echo(_endpoint_json(set_enabled(runtime().uow(), endpoint_id, enabled=True)))


@webhook_cli.command("rotate-secret")
@click.argument("endpoint_id", type=int)
@click.option(
    "--grace-minutes",
    default=0,
    show_default=True,
    type=int,
    help="Sign with the old secret too for this long, while the receiver is updated.",
)
@expected_errors
def webhook_rotate_secret(endpoint_id: int, grace_minutes: int):
    """A new signing secret for an endpoint; prints it (shown once)."""
    rotated = rotate_webhook_secret(runtime().uow(), endpoint_id, grace_minutes=grace_minutes)
    echo({**_endpoint_json(rotated.endpoint), "secret": rotated.secret})


@webhook_cli.command("deliveries")
@click.argument("endpoint_id", type=int)
@click.option("--failed", is_flag=True, help="Only attempts that did not deliver.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 10000))
@expected_errors
def webhook_deliveries(endpoint_id: int, failed: bool, limit: int):
    """Every attempt at an endpoint, newest first: time, status, latency, error."""
    attempts = deliveries(runtime().uow(), endpoint_id, failed_only=failed, limit=limit)
    echo(
        [
            {
                "event_id": a.event_id,
                "type": a.event_type,
                "delivery": a.delivery_status,
                "attempted_at": a.attempted_at.isoformat(),
                "status": a.status_code,
                "latency_ms": a.latency_ms,
                "error": a.error,
                "outcome": a.outcome,
            }
            for a in attempts
        ]
    )


@webhook_cli.command("replay")
@click.argument("event_id")
@click.option("--endpoint", "endpoint_id", type=int, help="Only to this endpoint.")
@expected_errors
def webhook_replay(event_id: str, endpoint_id: int | None):
    """Deliver an event again (same webhook-id), to one endpoint or to all that want it;
    where it is still queued it is left as it is (`already_queued`)."""
    done = replay(runtime().uow(), event_id, endpoint_id)
    echo({"event_id": event_id, "endpoints": done.queued, "already_queued": done.already_queued})


@click.command("worker")
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit (cron, tests).")
@with_appcontext
@expected_errors
def worker_command(once: bool):
    """Deliver webhooks from the outbox until TERM (the attempt in hand is finished first)."""
    rt = runtime()
    worker = Worker(rt.uow, rt.settings)
    if once:
        echo({"attempts": worker.deliver_due()})
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    worker.run()
