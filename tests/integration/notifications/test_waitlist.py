"""The waitlist (#29): a verified caller joins through the `joinWaitlist` tool; another caller's
cancellation frees a time; the worker texts the first in line (through the real `twilio` client
to tests/support/twilio_server.py); their YES, through Twilio's signed inbound webhook, books
it through the normal booking path. Offers are first-come (nothing is held).
"""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from twilio.request_validator import RequestValidator

from booking_service.domain.sms_replies import short_when
from booking_service.use_cases.accounts import add_user
from booking_service.worker.loop import Worker
from tests.support.helpers import (
    Clock,
    booked,
    booking,
    business_day,
    cli,
    count,
    envelope,
    post,
    result_of,
    run_concurrently,
    tool_call,
)
from tests.support.notifications import CALLER, TOKEN
from tests.support.web import sign_in_as

NY = ZoneInfo("America/New_York")
ANNA = "+14155550131"
BEN = "+14155550132"
WALK_IN = "+14155550177"


def say(app, org, tool: str, customer: str | None, **arguments):
    """One tool call on a call from `customer` (None: a web call, no verified number)."""
    body = envelope(tool_call(tool, **arguments), customer=customer)
    response = post(app.test_client(), org, body)
    assert response.status_code == 200
    return json.loads(response.data)["results"][0]


def join(app, org, customer: str | None, day, **extra):
    return say(app, org, "joinWaitlist", customer, name="Waiting Person", date=str(day), **extra)


def reply(app, org_id: int, body: str, sender: str) -> str | None:
    """A signed inbound SMS; the text of the TwiML answer (None: empty)."""
    url = f"http://localhost/api/twilio/sms/{org_id}"
    form = {
        "From": sender,
        "To": "+14155550100",
        "Body": body,
        "MessageSid": f"SM{uuid.uuid4().hex}",
    }
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    response = app.test_client().post(url, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200 and response.mimetype == "text/xml"
    found = ET.fromstring(response.data).find("Message")  # noqa: S314 - our own answer
    return found.text if found is not None else None


def waitlist(app, org) -> list[dict]:
    return [json.loads(line) for line in cli(app, "waitlist", "list", str(org.id)).splitlines()]


def status_of(db, reference: str) -> str:
    return db.execute(
        "SELECT status FROM appointments WHERE reference = %s", (reference,)
    ).fetchone()[0]


@pytest.fixture
def day():
    return business_day(days=3)


@pytest.fixture
def freed(app, org, day) -> tuple[str, datetime]:
    """A booking at 10:00 on `day` by another caller (whose cancellation frees the time)."""
    body = envelope(tool_call(**booking(start=f"{day}T10:00")), customer=CALLER)
    reference = booked(post(app.test_client(), org, body))["appointment"]["reference"]
    return reference, datetime.fromisoformat(f"{day}T10:00").replace(tzinfo=NY)


def cancel(app, org, reference: str) -> None:
    say(app, org, "cancelAppointment", CALLER, reference=reference)


def test_a_verified_caller_joins_a_cancellation_texts_them_and_yes_books_it(
    app, rt, org, db, twilio, day, freed
):
    reference, start = freed
    joined = result_of(
        post(
            app.test_client(),
            org,
            envelope(
                tool_call("joinWaitlist", name="Anna Berg", date=str(day), partOfDay="morning"),
                customer=ANNA,
            ),
        )
    )
    assert joined["status"] == "waiting" and "text this number" in joined["message"]
    assert "error" not in join(app, org, BEN, day)
    (anna, ben) = waitlist(app, org)
    assert anna["status"] == ben["status"] == "waiting"
    assert anna["phone"] == "***0131" and ANNA not in json.dumps(waitlist(app, org))

    worker = Worker(rt.uow, rt.settings, clock=Clock())
    worker.deliver_due(calendars=False)
    assert twilio.sent_to(ANNA) == []  # nothing freed yet

    cancel(app, org, reference)
    worker.deliver_due(calendars=False)
    (offer,) = twilio.sent_to(ANNA)
    assert offer.startswith(
        f"Bright Smile Dental: A time opened: {short_when(start, NY)} with Main. "
        "Reply YES within 15 minutes to take it."
    )
    assert twilio.sent_to(BEN) == []  # first in line only
    assert [e["status"] for e in waitlist(app, org)] == ["offered", "waiting"]

    answer = reply(app, org.id, "yes", ANNA)
    assert answer is not None and "it's yours" in answer
    new_reference = answer.rsplit("Reference ", 1)[1].rstrip(".")
    assert status_of(db, new_reference) == "booked"
    assert db.execute(
        "SELECT a.starts_at, c.phone FROM appointments a JOIN contacts c ON c.id = a.contact_id "
        "WHERE a.reference = %s",
        (new_reference,),
    ).fetchone() == (start, ANNA)
    # A second YES books nothing more; Ben, who was never offered it, hears nothing of it.
    assert "it's yours" in (reply(app, org.id, "YES", ANNA) or "")
    assert count(db, "SELECT count(*) FROM appointments WHERE status = 'booked'") == 1
    assert [e["status"] for e in waitlist(app, org)] == ["booked", "waiting"]
    assert count(db, "SELECT count(*) FROM outbox_events WHERE type = 'waitlist.offered'") == 1
    assert count(db, "SELECT count(*) FROM outbox_events WHERE type = 'waitlist.booked'") == 1
    worker.deliver_due(calendars=False)
    assert twilio.sent_to(BEN) == []  # the time is taken: nothing left to offer


def test_an_unanswered_offer_passes_to_the_next_and_the_late_yes_hears_it_is_gone(
    app, rt, org, db, twilio, day, freed
):
    reference, start = freed
    join(app, org, ANNA, day)
    join(app, org, BEN, day)
    clock = Clock()
    worker = Worker(rt.uow, rt.settings, clock=clock)
    cancel(app, org, reference)
    worker.deliver_due(calendars=False)
    assert len(twilio.sent_to(ANNA)) == 1 and twilio.sent_to(BEN) == []

    clock.advance(timedelta(minutes=16))  # Anna's 15 minutes pass without a YES
    worker.deliver_due(calendars=False)
    (offer,) = twilio.sent_to(BEN)
    assert f"A time opened: {short_when(start, NY)}" in offer
    assert [e["status"] for e in waitlist(app, org)] == ["waiting", "offered"]

    booked_answer = reply(app, org.id, "Yes", BEN)
    assert booked_answer is not None and "it's yours" in booked_answer
    late = reply(app, org.id, "YES", ANNA)
    assert late is not None and "that time is gone" in late and "still on the waitlist" in late
    assert [e["status"] for e in waitlist(app, org)] == ["waiting", "booked"]
    assert count(db, "SELECT count(*) FROM appointments WHERE status = 'booked'") == 1


def test_first_come_a_time_booked_meanwhile_is_gone_and_the_entry_keeps_its_place(
    app, rt, org, db, twilio, day, freed
):
    reference, _ = freed
    join(app, org, ANNA, day)
    worker = Worker(rt.uow, rt.settings, clock=Clock())
    cancel(app, org, reference)
    worker.deliver_due(calendars=False)
    assert len(twilio.sent_to(ANNA)) == 1
    # Nothing is held: a caller on the phone takes the time before Anna answers.
    walk_in = envelope(tool_call(**booking(start=f"{day}T10:00")), customer=WALK_IN)
    booked(post(app.test_client(), org, walk_in))

    answer = reply(app, org.id, "YES", ANNA)
    assert answer is not None and "that time is gone" in answer
    assert [e["status"] for e in waitlist(app, org)] == ["waiting"]
    assert count(db, "SELECT count(*) FROM appointments WHERE status = 'booked'") == 1


def test_an_unverified_caller_cannot_join(app, org, db, day):
    refused = join(app, org, None, day)
    assert "only put you on the waitlist when you call from the phone" in refused["error"]
    assert count(db, "SELECT count(*) FROM waitlist_entries") == 0


def test_a_caller_waits_for_at_most_three_times(app, org, db, day):
    for n in range(3):
        assert "error" not in join(app, org, ANNA, business_day(days=3 + n))
    fourth = join(app, org, ANNA, business_day(days=6))
    assert "already on the waitlist for 3 times" in fourth["error"]
    assert len(waitlist(app, org)) == 3


def test_quiet_hours_and_opt_outs_hold_offers_back(app, rt, org, db, twilio, day, freed):
    reference, _ = freed
    join(app, org, ANNA, day)
    join(app, org, BEN, day)
    assert reply(app, org.id, "STOP", ANNA) is None  # Anna opts out of texts
    now = datetime.now(NY)
    quiet = f"{(now - timedelta(hours=1)):%H:00}-{(now + timedelta(hours=2)):%H:00}"
    cli(app, "org", "update", str(org.id), "--quiet-hours", quiet)
    worker = Worker(rt.uow, rt.settings, clock=Clock())
    cancel(app, org, reference)
    worker.deliver_due(calendars=False)
    assert twilio.sent_to(BEN) == []  # quiet hours: no offer now
    cli(app, "org", "update", str(org.id), "--quiet-hours", "")
    worker.deliver_due(calendars=False)
    assert twilio.sent_to(ANNA) == []  # opted out: skipped
    assert len(twilio.sent_to(BEN)) == 1


def test_entries_expire_at_the_end_of_their_window(app, rt, org, db, day):
    join(app, org, ANNA, day)
    clock = Clock()
    clock.advance(timedelta(days=10))
    Worker(rt.uow, rt.settings, clock=clock).deliver_due(calendars=False)
    assert [e["status"] for e in waitlist(app, org)] == ["expired"]


def test_the_owners_page_lists_the_waitlist_with_phones_masked(app, rt, org, day):
    join(app, org, ANNA, day, partOfDay="afternoon", durationMinutes=45)
    add_user(rt.uow(), org.id, "owner@bright.example", "owner", "correct horse battery")
    client = app.test_client()
    assert sign_in_as(client, "owner@bright.example", "correct horse battery").status_code == 302
    page = client.get("/app/waitlist")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "***0131" in html and ANNA not in html and "0131" in html
    assert "afternoon" in html and "45 minutes" in html and "Waiting" in html
    assert 'href="/app/waitlist"' in client.get("/app/agenda").get_data(as_text=True)


def test_concurrent_yes_books_once_and_concurrent_workers_offer_once(
    app, rt, org, db, twilio, day, freed
):
    reference, _ = freed
    join(app, org, ANNA, day)
    join(app, org, BEN, day)
    cancel(app, org, reference)
    workers = [Worker(rt.uow, rt.settings, clock=Clock()) for _ in range(4)]
    run_concurrently(4, lambda i: workers[i].waitlist.offer_round())
    workers[0].deliver_due(calendars=False)
    assert len(twilio.sent_to(ANNA)) == 1 and twilio.sent_to(BEN) == []
    assert count(db, "SELECT count(*) FROM waitlist_offers") == 1

    answers = run_concurrently(5, lambda i: reply(app, org.id, "YES", ANNA))
    assert all(isinstance(a, str) and "it's yours" in a for a in answers), answers
    assert len({a.rsplit("Reference ", 1)[1] for a in answers}) == 1
    assert count(db, "SELECT count(*) FROM appointments WHERE status = 'booked'") == 1
    assert count(db, "SELECT count(*) FROM outbox_events WHERE type = 'waitlist.booked'") == 1


def test_a_move_frees_the_old_time_for_the_waitlist(app, rt, org, db, twilio, day, freed):
    reference, start = freed
    join(app, org, ANNA, day, partOfDay="morning")
    moved = say(
        app, org, "rescheduleAppointment", CALLER, reference=reference, newStart=f"{day}T14:00"
    )
    assert "error" not in moved
    Worker(rt.uow, rt.settings, clock=Clock()).deliver_due(calendars=False)
    (offer,) = twilio.sent_to(ANNA)
    assert f"A time opened: {short_when(start, NY)} with Main." in offer
    assert "it's yours" in (reply(app, org.id, "yes", ANNA) or "")
    assert count(db, "SELECT count(*) FROM appointments WHERE status = 'booked'") == 2


def test_a_caller_busy_with_one_offer_still_gets_the_other_freed_time_after(
    app, rt, org, db, twilio, day, freed
):
    reference, start = freed
    second = envelope(tool_call(**booking(start=f"{day}T11:00")), customer=CALLER)
    other = booked(post(app.test_client(), org, second))["appointment"]["reference"]
    join(app, org, ANNA, day)
    clock = Clock()
    worker = Worker(rt.uow, rt.settings, clock=clock)
    cancel(app, org, reference)
    cancel(app, org, other)
    worker.deliver_due(calendars=False)
    (first,) = twilio.sent_to(ANNA)
    assert short_when(start, NY) in first  # the earlier freed time first; the 11:00 waits
    clock.advance(timedelta(minutes=16))
    worker.deliver_due(calendars=False)
    assert len(twilio.sent_to(ANNA)) == 2
    assert short_when(start + timedelta(hours=1), NY) in twilio.sent_to(ANNA)[-1]


def test_only_an_entry_whose_part_of_day_fits_is_offered_the_time(
    app, rt, org, db, twilio, day, freed
):
    reference, _ = freed  # 10:00: morning
    join(app, org, ANNA, day, partOfDay="afternoon")
    join(app, org, BEN, day, partOfDay="any")
    cancel(app, org, reference)
    Worker(rt.uow, rt.settings, clock=Clock()).deliver_due(calendars=False)
    assert twilio.sent_to(ANNA) == [] and len(twilio.sent_to(BEN)) == 1
