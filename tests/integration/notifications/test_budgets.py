"""Budgets on what the business sends, and on what strangers can make it send (#24).

The finding: five web calls made the business text 30 invented numbers in 0.4 s with 60
reminders queued; US premium-rate (+1 900) and toll-free numbers got texts; mail went to
`root@[10.0.0.5]` and `postmaster@localhost`. Against the fake Twilio and a real SMTP server.
"""

from __future__ import annotations

import json
import threading

from booking_service.use_cases.send_messages import Notifier
from tests.support.helpers import (
    booked,
    booking,
    cli,
    envelope,
    error_of,
    local_start,
    post,
    tool_call,
)
from tests.support.notifications import StoppedClock, enable_sms


def number(n: int) -> str:
    return f"+1415555{n:04d}"


def book_as(app, org, caller: str | None, n: int, **extra):
    """A booking on its own call (the per-call change limit is not what is tested here)."""
    body = envelope(
        tool_call(**booking(start=local_start(days=3 + n // 8, hour=9 + n % 8), **extra)),
        customer=caller,
        call_id=f"call-{n}",
    )
    return post(app.test_client(), org, body)


def sms_rows(db, status: str | None = None) -> list[tuple]:
    return db.execute(
        "SELECT to_address, status, error FROM notifications WHERE channel = 'sms' "
        "AND kind = 'confirmation' AND (%s::text IS NULL OR status = %s) ORDER BY id",
        (status, status),
    ).fetchall()


def test_the_31st_sms_of_a_30_a_day_organization_is_not_sent_and_the_owner_is_told(
    app, rt, org, db, twilio
):
    cli(app, "org", "update", str(org.id), "--sms-per-day", "30", "--reminders", "")
    for n in range(31):
        booked(book_as(app, org, number(n), n))
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()

    assert len(sms_rows(db, "sent")) == 30
    ((to, _, why),) = sms_rows(db, "skipped")
    assert to == number(30) and "daily SMS budget (30) is used up" in why
    assert twilio.sent_to(number(30)) == []
    # The owner is told once: an event to their webhooks, and a note on the health page.
    events = db.execute(
        "SELECT payload FROM outbox_events WHERE type = 'messages.budget_reached'"
    ).fetchall()
    assert len(events) == 1
    assert events[0][0]["data"]["channel"] == "sms" and events[0][0]["data"]["budget"] == 30
    health = app.test_client().get("/api/health")
    assert health.status_code == 200 and health.get_json()["messages"] == "budget_reached"


def test_the_email_budget_counts_on_its_own(app, rt, org, db, mailbox):
    cli(app, "org", "update", str(org.id), "--email-per-day", "2", "--reminders", "")
    for n in range(3):
        booked(book_as(app, org, number(n), n, email=f"guest{n}@example.com"))
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()
    assert len(mailbox[0].messages) == 2
    assert len(twilio_free(db)) == 3  # the SMS budget is untouched by emails


def twilio_free(db) -> list[tuple]:
    return sms_rows(db, "sent")


def test_premium_rate_toll_free_and_landline_numbers_get_no_texts(app, rt, org, db, twilio):
    enable_sms(app, str(org.id), "--countries", "US,GB")
    refused = ["+19005550123", "+18005550123", "+18885550123", "+442079460000"]
    for n, caller in enumerate(refused):
        booked(book_as(app, org, caller, n))
    booked(book_as(app, org, number(7), 7))  # an ordinary number still gets its text
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()
    for caller in refused:
        assert twilio.sent_to(caller) == []
    assert [row[0] for row in sms_rows(db)] == [number(7)]
    # A message planned before the rule (or by an older version) is refused when sending.
    db.execute("UPDATE notifications SET status = 'pending', to_address = '+19005550123'")
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()
    assert twilio.sent_to("+19005550123") == []
    assert {row[2] for row in sms_rows(db)} == {"not a number that can receive texts"}


def test_ip_literal_and_local_domains_get_no_email(app, rt, org, db, mailbox):
    for n, address in enumerate(
        ["root@[10.0.0.5]", "postmaster@localhost", "x@printer.local", "a@10.0.0.5"]
    ):
        book_as(app, org, number(n), n, email=address)
    booked(book_as(app, org, number(9), 9, email="maria@example.com"))
    # Not even planned (the unit of work asks recipients.may_email) ...
    assert db.execute(
        "SELECT DISTINCT to_address FROM notifications WHERE channel = 'email'"
    ).fetchall() == [("maria@example.com",)]
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()
    assert [m["To"] for m in mailbox[0].messages] == ["maria@example.com"]
    # ... and refused when sending one planned before the rule.
    db.execute("UPDATE notifications SET status = 'pending', to_address = 'root@[10.0.0.5]'")
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()
    assert len(mailbox[0].messages) == 1
    assert {
        e
        for (e,) in db.execute(
            "SELECT error FROM notifications WHERE channel = 'email' AND status <> 'pending'"
        )
    } == {"not an address on a public domain name"}


def test_bookings_for_numbers_nobody_verified_stop_at_the_daily_limit(app, rt, org, db, twilio):
    cli(app, "org", "update", str(org.id), "--unverified-bookings-per-day", "3")
    # A web call (no caller ID) books for numbers it names: three go through.
    for n in range(3):
        booked(book_as(app, org, None, n, phone=number(n)))
    answer = error_of(book_as(app, org, None, 3, phone=number(3)))
    assert "other than the one you're calling from" in answer
    # A verified caller booking for their own number is not limited.
    booked(book_as(app, org, number(4), 4))
    # Nor is the owner booking by hand (the web page and CLI never count).
    assert db.execute("SELECT count(*) FROM appointments").fetchone() == (4,)


def test_parallel_unverified_bookings_cannot_pass_the_limit_together(app, rt, org, db):
    cli(app, "org", "update", str(org.id), "--unverified-bookings-per-day", "3")
    answers: list = []

    def one(n: int) -> None:
        answers.append(book_as(app, org, None, n, phone=number(n)))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    results = [json.loads(a.data)["results"][0] for a in answers]
    assert sum("result" in r for r in results) == 3
    assert sum("other than the one you're calling from" in r.get("error", "") for r in results) == 5
    assert db.execute("SELECT count(*) FROM appointments").fetchone() == (3,)
