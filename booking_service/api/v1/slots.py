"""GET /api/v1/slots: free starts of a day or a window (scope slots:read)."""

from __future__ import annotations

from datetime import timedelta

from booking_service.api.v1.blueprint import (
    bp,
    caller,
    load_query,
    requires,
    uow,
    within_reach,
)
from booking_service.api.v1.problems import local_iso, refusal_problem, respond
from booking_service.api.v1.schemas import SlotsQuery
from booking_service.domain.errors import Refusal
from booking_service.domain.times import utc_now
from booking_service.use_cases.availability import check_availability

# Enough for a week of a busy diary; a client pages by window.
MAX_SLOTS = 500
_QUERY = SlotsQuery()


@bp.get("/slots")
@requires("slots:read")
def slots():
    """Free starts (each with its end and resource), soonest first."""
    org = caller().org
    args = load_query(_QUERY)
    now = utc_now()
    today = now.astimezone(org.zone).date()
    first = args.get("date") or args.get("from_") or today
    last = args.get("date") or args.get("to") or first
    if "from_" in args and "to" not in args:
        last = first + timedelta(days=6)
    within_reach(first, "date" if "date" in args else "from")
    within_reach(last, "date" if "date" in args else "to")
    try:
        found = check_availability(
            uow(),
            org,
            first=first,
            last=last,
            window_start=None,
            window_end=None,
            service=args.get("service"),
            minutes=args.get("durationMinutes"),
            resource=args.get("resource"),
            now=now,
            enough=MAX_SLOTS,
            next_day=False,
        )
    except Refusal as refusal:
        doc = refusal_problem(refusal, org)
        return respond(doc["status"], doc)
    length = timedelta(minutes=found.minutes)
    return respond(
        200,
        {
            "slots": [
                {
                    "start": local_iso(slot.start, org),
                    "end": local_iso(slot.start + length, org),
                    "resource": slot.resource_name,
                }
                for slot in found.slots
            ]
        },
    )
