"""Reply to confirm or cancel (#29): a confirmation or reminder asks "Reply 1 to confirm or 2 to
cancel."; the reply comes back through Twilio's signed inbound webhook and is answered with
TwiML. Messages go out through the real `twilio` client to tests/support/twilio_server.py; the
cancelled appointment's calendar event is removed from a real CalDAV server (Radicale).
"""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
from sqlalchemy import event
from twilio.request_validator import RequestValidator

from booking_service.domain.caller_messages import calendar_uid
from booking_service.runtime.extensions import KEY
from booking_service.use_cases.accounts import add_user
from booking_service.use_cases.send_messages import Notifier
from booking_service.use_cases.sync_calendars import CalendarSync
from tests.support.app import make_app
from tests.support.calendars import link, new_calendar
from tests.support.helpers import (
    Clock,
    booked,
    booking,
    cli,
    count,
    envelope,
    local_start,
    post,
    run_concurrently,
    statements_sent,
    tool_call,
)
from tests.support.notifications import CALLER, TOKEN, StoppedClock, book
from tests.support.radicale_server import Radicale, radicale
from tests.support.web import sign_in_as

NY = ZoneInfo("America/New_York")
STRANGER = "+14155550199"


@pytest.fixture(scope="module")
def dav(tmp_path_factory) -> Radicale:
    with radicale(tmp_path_factory.mktemp("radicale")) as server:
        yield server


@pytest.fixture
def app(env):
    """The notification tests' app, also allowed to reach the Radicale on loopback."""
    application = make_app(
        env["DATABASE_URL"],
        CALENDAR_ALLOW_PRIVATE_TARGETS=True,
        PUBLIC_URL="https://book.example.com",
        CALENDAR_TIMEOUT_S=3,
        **{k: v for k, v in env.items() if k != "DATABASE_URL"},
    )
    yield application
    application.extensions[KEY].engine.dispose()


def reply(app, org_id: int, body: str, *, sender: str = CALLER, sid: str | None = None):
    """An SMS to the organization's number, signed as Twilio signs it; (status, answer text)."""
    url = f"http://localhost/api/twilio/sms/{org_id}"
    form = {
        "From": sender,
        "To": "+14155550100",
        "Body": body,
        "MessageSid": sid or "SM" + uuid.uuid4().hex,
    }
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    response = app.test_client().post(url, data=form, headers={"X-Twilio-Signature": signature})
    assert response.mimetype == "text/xml"
    root = ET.fromstring(response.data)  # noqa: S314 - our own answer
    assert root.tag == "Response"
    messages = [m.text for m in root.findall("Message")]
    assert len(messages) <= 1
    return response.status_code, (messages[0] if messages else None)


def appointment(db, reference: str) -> tuple[str, datetime | None]:
    return db.execute(
        "SELECT status, confirmed_at FROM appointments WHERE reference = %s", (reference,)
    ).fetchone()


def events_of(db, event_type: str, reference: str) -> int:
    return count(
        db,
        "SELECT count(*) FROM outbox_events WHERE type = %s AND payload->'data'->>'reference' = %s",
        event_type,
        reference,
    )


def test_a_confirmation_asks_for_1_or_2_and_never_an_opt_out_word(app, rt, org, twilio):
    book(app, org, local_start(days=3, hour=10))
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()
    (confirmation,) = twilio.sent_to(CALLER)
    assert confirmation.endswith("Reply 1 to confirm or 2 to cancel. Reply STOP to opt out.")
    # What it asks the caller to send is a digit; never a keyword Twilio or a carrier acts on.
    asked = confirmation.split("Reply STOP")[0].upper()
    keywords = ("CANCEL", "STOP", "END", "QUIT", "UNSUBSCRIBE", "REVOKE", "OPTOUT", "HELP", "INFO")
    for word in keywords:
        assert f"REPLY {word}" not in asked and f"OR {word}" not in asked


def test_a_reminder_reply_1_confirms_once_however_often_it_is_sent(app, rt, org, db, twilio):
    start = local_start(days=3, hour=10)
    reference = book(app, org, start)["appointment"]["reference"]
    clock = StoppedClock()
    notifier = Notifier(rt.uow, rt.settings, clock=clock)
    notifier.send_due()
    clock.now = datetime.fromisoformat(start).replace(tzinfo=NY) - timedelta(days=1)
    notifier.send_due()  # the 24 h reminder
    reminder = twilio.sent_to(CALLER)[-1]
    assert "a reminder of your appointment" in reminder and "Reply 1 to confirm" in reminder

    sid = "SM" + uuid.uuid4().hex
    status, answer = reply(app, org.id, "1", sid=sid)
    assert status == 200 and answer is not None and "is confirmed" in answer
    _, confirmed_at = appointment(db, reference)
    assert confirmed_at is not None
    # Again, as "yes", "Confirm", and Twilio retrying the first request: one confirmation.
    for body in ("1", " yes ", "Confirm."):
        assert "is confirmed" in (reply(app, org.id, body)[1] or "")
    assert reply(app, org.id, "1", sid=sid) == (200, answer)
    assert appointment(db, reference) == ("booked", confirmed_at)
    assert events_of(db, "appointment.confirmed", reference) == 1

    listed = [
        json.loads(line)
        for line in cli(
            app, "appointments", "list", str(org.id), "--days", "10", "--json"
        ).splitlines()
    ]
    (mine,) = [a for a in listed if a["reference"] == reference]
    assert mine["confirmed_at"] is not None and mine["status"] == "booked"


def test_reply_2_cancels_once_frees_the_time_and_removes_the_calendar_event(
    app, rt, org, db, twilio, dav
):
    main_id = db.execute(
        "SELECT id FROM resources WHERE org_id = %s AND name = 'Main'", (org.id,)
    ).fetchone()[0]
    calendar = new_calendar(dav)
    link(app, main_id, calendar, "--no-block")
    sync = CalendarSync(rt.uow, rt.settings, clock=Clock(), jitter=lambda: 1.0)
    start = local_start(days=3, hour=11)
    reference = book(app, org, start)["appointment"]["reference"]
    sync.sync_due()
    uid = calendar_uid(org.id, reference)
    assert uid in _uids(calendar)
    notifier = Notifier(rt.uow, rt.settings, clock=StoppedClock())
    notifier.send_due()

    status, answer = reply(app, org.id, "2")
    assert status == 200 and answer is not None and "is cancelled" in answer
    assert appointment(db, reference)[0] == "cancelled"
    assert "already cancelled" in (reply(app, org.id, "2")[1] or "")
    assert events_of(db, "appointment.cancelled", reference) == 1

    sync.sync_due()
    assert uid not in _uids(calendar)
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()  # a clock after the reply
    assert "is cancelled" in twilio.sent_to(CALLER)[-1]  # the cancellation text, once
    assert sum("is cancelled" in m for m in twilio.sent_to(CALLER)) == 1
    # The chair is free: another caller books the very same time.
    other = envelope(tool_call(**booking(start=start)), customer="+14155550177")
    assert booked(post(app.test_client(), org, other))["appointment"]["reference"] != reference


def _uids(calendar) -> set[str]:
    uids = set()
    for item in calendar.events():
        cal = icalendar.Calendar.from_ical(item.data)
        uids |= {str(v["UID"]) for v in cal.walk("VEVENT")}
    return uids


def test_a_reply_from_another_number_changes_nothing(app, rt, org, db, twilio):
    reference = book(app, org, local_start(days=3, hour=12))["appointment"]["reference"]
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()
    for body in ("1", "2", "yes", "2 " + reference):
        assert reply(app, org.id, body, sender=STRANGER) == (200, None)
    assert appointment(db, reference) == ("booked", None)
    assert count(db, "SELECT count(*) FROM outbox_events WHERE type = 'appointment.confirmed'") == 0


def test_stop_and_cancel_keep_their_opt_out_meaning(app, rt, org, db, twilio):
    reference = book(app, org, local_start(days=3, hour=13))["appointment"]["reference"]
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()
    # "CANCEL" is a carrier opt-out word: it unsubscribes, it does not cancel.
    assert reply(app, org.id, "cancel") == (200, None)
    assert count(db, "SELECT count(*) FROM sms_opt_outs WHERE phone = %s", CALLER) == 1
    assert appointment(db, reference)[0] == "booked"
    assert reply(app, org.id, "START") == (200, None)
    assert count(db, "SELECT count(*) FROM sms_opt_outs WHERE phone = %s", CALLER) == 0
    assert reply(app, org.id, "STOP") == (200, None)
    assert count(db, "SELECT count(*) FROM sms_opt_outs WHERE phone = %s", CALLER) == 1
    assert reply(app, org.id, "HELP") == (200, None)  # Twilio answers HELP itself
    assert appointment(db, reference) == ("booked", None)


def test_anything_else_gets_one_help_line(app, rt, org, db, twilio):
    book(app, org, local_start(days=3, hour=14))
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()
    status, answer = reply(app, org.id, "what time was it again?")
    assert status == 200 and answer is not None
    assert "reply 1 to confirm or 2 to cancel your appointment on" in answer


def test_when_the_last_text_is_no_guide_the_answer_asks_which_listing_only_own_times(
    app, rt, org, db, twilio
):
    first = book(app, org, local_start(days=3, hour=9))["appointment"]["reference"]
    second = book(app, org, local_start(days=4, hour=9))["appointment"]["reference"]
    someone_else = envelope(
        tool_call(**booking(start=local_start(days=5, hour=9))), customer=STRANGER
    )
    theirs = booked(post(app.test_client(), org, someone_else))["appointment"]["reference"]
    # No confirmation went out (SMS was off then): nothing says which one a "2" is about.
    db.execute(
        "UPDATE notifications SET status = 'skipped' WHERE org_id = %s AND status = 'pending'",
        (org.id,),
    )
    db.commit()
    status, answer = reply(app, org.id, "2")
    assert status == 200 and answer is not None and "which appointment?" in answer
    assert first in answer and second in answer and theirs not in answer
    assert appointment(db, first)[0] == appointment(db, second)[0] == "booked"

    assert "is cancelled" in (reply(app, org.id, f"2 {second}")[1] or "")
    assert appointment(db, second)[0] == "cancelled" and appointment(db, first)[0] == "booked"
    # Naming somebody else's reference reaches nothing of theirs.
    assert "is cancelled" not in (reply(app, org.id, f"2 {theirs}")[1] or "")
    assert appointment(db, theirs)[0] == "booked"


def test_a_reply_about_a_past_appointment_asks_which(app, rt, org, db, twilio):
    reference = book(app, org, local_start(days=3, hour=15))["appointment"]["reference"]
    later = book(app, org, local_start(days=6, hour=15))["appointment"]["reference"]
    db.execute(
        "UPDATE notifications SET status = 'skipped' WHERE org_id = %s AND status = 'pending' "
        "AND appointment_id = (SELECT id FROM appointments WHERE reference = %s)",
        (org.id, later),
    )
    db.commit()
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()  # confirms `reference`
    # Its time passes (moved into the past directly: no clock reaches a request's "now").
    db.execute(
        "UPDATE appointments SET starts_at = now() - interval '2 hours', "
        "ends_at = now() - interval '90 minutes', blocked_until = now() - interval '90 minutes' "
        "WHERE reference = %s",
        (reference,),
    )
    db.commit()
    status, answer = reply(app, org.id, "1")
    assert status == 200 and answer is not None
    assert "which appointment?" in answer and later in answer
    assert reference not in answer
    assert appointment(db, reference)[1] is None and appointment(db, later)[1] is None


def test_the_owner_sees_the_confirmation_on_the_agenda_and_the_appointment(app, rt, org, twilio):
    start = local_start(days=3, hour=16)
    reference = book(app, org, start)["appointment"]["reference"]
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()
    assert "is confirmed" in (reply(app, org.id, "1")[1] or "")
    add_user(rt.uow(), org.id, "owner@bright.example", "owner", "correct horse battery")
    client = app.test_client()
    assert sign_in_as(client, "owner@bright.example", "correct horse battery").status_code == 302
    agenda = client.get(f"/app/agenda?date={start[:10]}").get_data(as_text=True)
    assert "Confirmed by the caller" in agenda
    detail = client.get(f"/app/appointments/{reference}").get_data(as_text=True)
    assert "confirmed by the caller by text" in detail
    assert "Confirmed by the caller" in detail and "text reply" in detail  # the history


def test_concurrent_replies_confirm_once_and_cancel_once(app, rt, org, db, twilio):
    reference = book(app, org, local_start(days=3, hour=9, minute=30))["appointment"]["reference"]
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()
    answers = run_concurrently(6, lambda i: reply(app, org.id, "1"))
    assert all(a == (200, answers[0][1]) for a in answers), answers
    assert events_of(db, "appointment.confirmed", reference) == 1

    answers = run_concurrently(6, lambda i: reply(app, org.id, "2"))
    assert all(isinstance(a, tuple) and a[0] == 200 for a in answers), answers
    assert sum("is cancelled" in (a[1] or "") for a in answers) == 1
    assert sum("already cancelled" in (a[1] or "") for a in answers) == 5
    assert events_of(db, "appointment.cancelled", reference) == 1


def test_a_reply_runs_on_one_connection_and_takes_the_catalogue_the_worker_keeps(
    app, rt, org, db, twilio
):
    """#30: the token's lookup and the reply's transaction share one pooled connection, and
    a confirmation names its resource from the catalogue kept for the organization's version
    (the reply reads the organization afresh, so the version is current)."""
    first = book(app, org, local_start(days=3, hour=9))["appointment"]["reference"]
    second = book(app, org, local_start(days=4, hour=9))["appointment"]["reference"]
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()
    assert "is confirmed" in (reply(app, org.id, f"1 {first}")[1] or "")
    seen = statements_sent(app)
    checkouts = []
    event.listen(app.extensions[KEY].engine, "checkout", lambda *args: checkouts.append(1))

    assert "is confirmed" in (reply(app, org.id, f"1 {second}")[1] or "")

    assert len(checkouts) == 1
    assert not [s for s in seen if "FROM resources" in s], seen
    assert appointment(db, second)[1] is not None
    (payload,) = db.execute(
        "SELECT payload FROM outbox_events WHERE type = 'appointment.confirmed' "
        "AND payload->'data'->>'reference' = %s",
        (second,),
    ).fetchone()
    assert payload["data"]["resource"]  # named from the kept catalogue


def test_a_1_after_a_newer_waitlist_offer_confirms_what_the_confirmation_was_about(
    app, rt, org, db, twilio
):
    """A reply is about the newest text about an appointment, even when a waitlist offer
    (answered by YES; about the appointment that freed its time) came after it."""
    reference = book(app, org, local_start(days=3, hour=11))["appointment"]["reference"]
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()
    someone_else = envelope(
        tool_call(**booking(start=local_start(days=5, hour=11))), customer=STRANGER
    )
    freed = booked(post(app.test_client(), org, someone_else))["appointment"]["reference"]
    db.execute(
        "INSERT INTO notifications (org_id, appointment_id, kind, channel, to_address, due_at, "
        "status, attempted_at, sent_at, attempts, body) "
        "SELECT org_id, id, 'waitlist_offer', 'sms', %s, now(), 'sent', now(), "
        "now() + interval '1 minute', 1, 'A time came free' FROM appointments "
        "WHERE reference = %s",
        (CALLER, freed),
    )
    db.commit()

    status, answer = reply(app, org.id, "1")

    assert status == 200 and "is confirmed" in (answer or "")
    assert appointment(db, reference)[1] is not None
    assert appointment(db, freed) == ("booked", None)


def test_a_reply_about_the_numbers_former_contacts_appointment_changes_nothing(
    app, rt, org, db, twilio
):
    """The text went to this number when it was another contact's: the new contact's "1"
    reaches none of the former contact's appointments."""
    reference = book(app, org, local_start(days=3, hour=16))["appointment"]["reference"]
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()
    db.execute(
        "UPDATE contacts SET phone = '+14155550177' WHERE org_id = %s AND phone = %s",
        (org.id, CALLER),
    )
    db.execute(
        "INSERT INTO contacts (org_id, phone, name) VALUES (%s, %s, 'New Owner')", (org.id, CALLER)
    )
    db.commit()

    assert reply(app, org.id, "1") == (200, None)
    assert reply(app, org.id, f"2 {reference}") == (200, None)
    assert appointment(db, reference) == ("booked", None)
