"""`flask --app wsgi calls list ORG_ID`: what the voice platforms reported after each call."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from booking_service.cli.common import expected_errors
from booking_service.runtime.extensions import runtime
from booking_service.use_cases.call_reports import call_json, calls_between

calls_cli = AppGroup("calls", help="What each call did, as the voice platforms reported it.")


def _plain(text: str | None, limit: int = 120) -> str:
    """Caller-influenced text for a terminal: no control characters (an escape sequence in a
    summary must not drive the operator's terminal), on one line, cut."""
    if not text:
        return ""
    shown = "".join(c if c.isprintable() else " " for c in text)
    shown = " ".join(shown.split())
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


@calls_cli.command("list")
@click.argument("org_id", type=int)
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), help="First local day.")
@click.option("--days", default=7, show_default=True, type=int, help="How many days (up to today).")
@click.option("--without-booking", is_flag=True, help="Only calls that booked nothing new.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@expected_errors
def calls_list(org_id: int, day, days: int, without_booking: bool, as_json: bool):
    """List the reported calls, oldest first: when, platform, outcome (booked, changed, none),
    the references the call booked, moved or cancelled, and the platform's summary."""
    rows = calls_between(
        runtime().uow(),
        org_id,
        first_day=day.date() if day else None,
        days=days,
        without_booking=without_booking,
    )
    for row in rows:
        if as_json:
            click.echo(json.dumps(call_json(row), ensure_ascii=False))
        else:
            when = (row.ended_at or row.created_at).isoformat(timespec="minutes")
            references = ",".join(row.references) or "-"
            click.echo(
                f"{when}  {row.platform:<10}  {row.outcome:<7}  {references:<12}  "
                f"{_plain(row.summary)}"
            )
