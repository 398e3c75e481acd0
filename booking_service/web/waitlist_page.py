"""The waitlist page (#29): who waits for a time to open, in the order they joined, phones
masked. Read only: callers join by voice and leave by taking an offer or when their window ends."""

from __future__ import annotations

from datetime import datetime

from flask import g, render_template

from booking_service.use_cases.waitlist import listing
from booking_service.web.auth import signed_in_only, uow
from booking_service.web.blueprint import bp

_STATUS_WORDS = {
    "waiting": "Waiting",
    "offered": "Offered a time (15 minutes to answer)",
    "booked": "Booked",
    "expired": "Expired",
}


@bp.get("/waitlist", endpoint="waitlist")
@signed_in_only
def waitlist_page():
    """The organization's waitlist: window, part of day, what for, status."""
    entries = listing(uow(), g.org.id)
    for entry in entries:
        entry["window_start"] = datetime.fromisoformat(entry["window"]["start"])
        entry["window_end"] = datetime.fromisoformat(entry["window"]["end"])
        entry["status_words"] = _STATUS_WORDS.get(entry["status"], entry["status"])
    return render_template("web/waitlist.html", entries=entries)
