"""Appointment commands: the day's list, and how an appointment that has started went.

`appointments` is the one group. `appointment mark` (the old spelling) still works for one
release: the same command under a hidden `appointment` group (README, CLI).
"""

from __future__ import annotations

from datetime import date

import click
from flask.cli import AppGroup

from booking_service.cli.common import echo, expected_errors
from booking_service.domain.times import utc_now
from booking_service.runtime.extensions import runtime
from booking_service.use_cases.appointments import OUTCOMES, mark_outcome
from booking_service.use_cases.calendar_links import ListingLine, list_appointments
from booking_service.use_cases.orgs import get_org

appointments_cli = AppGroup("appointments", help="The organization's appointments.")
# The old spelling, kept for one release (hidden from --help): `appointment mark`.
appointment_alias_cli = AppGroup(
    "appointment", help="Old spelling of `appointments` (one release).", hidden=True
)


def _table(zone: str, lines: list[ListingLine]) -> str:
    header = ("When", "Resource", "Name", "Service", "Ref", "Status", "Phone")
    rows = [
        (
            f"{line.starts:%a %Y-%m-%d %H:%M}-{line.ends:%H:%M}",
            line.resource,
            line.name or "",
            line.service or "",
            line.reference,
            line.status + (" (unconfirmed)" if line.unconfirmed else ""),
            line.phone,
        )
        for line in lines
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    out = [f"Times in {zone}"]
    for row in [header, *rows]:
        out.append(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )
    if not rows:
        out.append("(no appointments)")
    return "\n".join(out)


@appointments_cli.command("list")
@click.argument("org_id", type=int)
@click.option(
    "--date",
    "first_day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="First local day (default: today in the organization's zone).",
)
@click.option("--days", type=int, default=1, show_default=True, help="How many days.")
@click.option("--resource", help="Only this resource (by name).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@expected_errors
def appointments_list(org_id, first_day, days, resource, as_json):
    """The appointments of a day (or several): local time, resource, name, service, reference,
    status and the phone masked to its last 4 digits; cancelled ones included."""
    day: date | None = first_day.date() if first_day is not None else None
    zone, lines = list_appointments(
        runtime().uow(), org_id, first_day=day, days=days, resource=resource
    )
    if as_json:
        for line in lines:
            echo(line.as_json())
    else:
        click.echo(_table(zone, lines))


@appointments_cli.command("mark")
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


appointment_alias_cli.add_command(appointment_mark)
