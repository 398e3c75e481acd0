"""Confirmations and reminders by SMS and email, through real clients and real servers on
loopback: the `twilio` client against tests/support/twilio_server.py, smtplib against aiosmtpd.
Time is an injected clock, so a reminder schedule runs in a second. The fixtures are in
tests/support/caller_messages.py (this folder's conftest hands them out).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from datetime import time as wall
from zoneinfo import ZoneInfo

import psycopg
import pytest
from twilio.request_validator import RequestValidator

from booking_service.domain import caller_messages
from booking_service.runtime.extensions import KEY
from booking_service.use_cases.orgs import create_org
from booking_service.use_cases.resources import add_resource
from booking_service.use_cases.send_messages import Notifier
from tests.support.app import Org, make_app
from tests.support.helpers import (
    booked,
    booking,
    cli,
    count,
    envelope,
    local_start,
    post,
    tool_call,
    transitions,
)
from tests.support.notifications import (
    ACCOUNT,
    CALLER,
    SECRET_KEY,
    TOKEN,
    StoppedClock,
    book,
    enable_sms,
    rows,
)

NY = ZoneInfo("America/New_York")


def test_a_booking_three_days_ahead_gets_a_confirmation_and_both_reminders_on_time(
    app, rt, org, db, twilio, mailbox
):
    start = local_start(days=3, hour=10)
    result = book(app, org, start)
    reference = result["appointment"]["reference"]
    starts_at = datetime.fromisoformat(start).replace(tzinfo=NY)
    planned = rows(db, reference)

    reminders = sorted({(r[3], r[4]) for r in planned if r[0] == "reminder"})
    assert reminders == [
        (starts_at.astimezone(UTC) - timedelta(days=1), 1440),  # same local time the day before
        (starts_at.astimezone(UTC) - timedelta(hours=2), 120),
    ]
    clock = StoppedClock()
    notifier = Notifier(rt.uow, rt.settings, clock=clock)
    notifier.send_due()
    (confirmation,) = twilio.sent_to(CALLER)
    assert confirmation.startswith("Bright Smile Dental: you're booked for ")
    local = starts_at
    assert f"{local:%A}, {local:%B} {local.day}, {local.year} at 10:00 AM" in confirmation
    assert f"Reference {reference}." in confirmation
    assert confirmation.endswith("Reply STOP to opt out.")
    (mail,) = mailbox[0].messages
    assert mail["To"] == "maria@example.com"
    invite = next(p for p in mail.walk() if p.get_content_type() == "text/calendar")
    ics = invite.get_payload(decode=True).decode()
    assert "METHOD:REQUEST" in ics
    assert f"UID:{caller_messages.calendar_uid(org.id, reference)}" in ics

    # Just before the 24 h reminder: nothing; at it: the reminder, by SMS and email.
    clock.now = starts_at - timedelta(days=1, seconds=1)
    assert notifier.send_due() == 0
    clock.now = starts_at - timedelta(days=1)
    assert notifier.send_due() == 2
    assert "a reminder of your appointment" in twilio.sent_to(CALLER)[-1]
    clock.now = starts_at - timedelta(hours=2)
    assert notifier.send_due() == 2
    assert len(twilio.sent_to(CALLER)) == 3
    assert {r[2] for r in rows(db, reference)} == {"sent"}


def test_a_booking_three_hours_ahead_gets_only_the_two_hour_reminder(app, org, db):
    # Three hours ahead, or four when that would run past closing at 23:45 (the test failed
    # when run between 20:00 and 21:00 in New York).
    for hours in (3, 4):
        start = (datetime.now(NY) + timedelta(hours=hours)).replace(second=0, microsecond=0)
        start = start.replace(minute=start.minute - start.minute % 15) + timedelta(minutes=15)
        if start.hour < 23:
            break
    # An open resource at that hour: the default one keeps office hours.
    db.execute(
        "UPDATE working_hours SET opens = '00:00', closes = '23:45' WHERE org_id = %s", (org.id,)
    )
    db.execute(
        "INSERT INTO working_hours (org_id, resource_id, weekday, opens, closes) "
        "SELECT org_id, resource_id, d, '00:00', '23:45' FROM working_hours, "
        "generate_series(0, 6) d WHERE org_id = %s AND weekday = 0 "
        "ON CONFLICT DO NOTHING",
        (org.id,),
    )
    result = book(app, org, start.strftime("%Y-%m-%dT%H:%M"))
    kinds = {(r[0], r[4]) for r in rows(db, result["appointment"]["reference"])}

    assert kinds == {("confirmation", None), ("reminder", 120)}


def test_a_cancellation_is_sent_and_no_reminder_after_it(app, rt, org, db, twilio, mailbox):
    start = local_start(days=3, hour=11)
    reference = book(app, org, start)["appointment"]["reference"]
    notifier = Notifier(rt.uow, rt.settings, clock=StoppedClock())
    notifier.send_due()

    cancel = envelope(tool_call("cancelAppointment", reference=reference), customer=CALLER)
    assert post(app.test_client(), org, cancel).status_code == 200
    clock = StoppedClock()
    Notifier(rt.uow, rt.settings, clock=clock).send_due()

    assert "is cancelled" in twilio.sent_to(CALLER)[-1]
    cancelled = mailbox[0].messages[-1]
    ics = next(p for p in cancelled.walk() if p.get_content_type() == "text/calendar")
    text = ics.get_payload(decode=True).decode()
    assert "METHOD:CANCEL" in text
    assert f"UID:{caller_messages.calendar_uid(org.id, reference)}" in text
    reminders = [r for r in rows(db, reference) if r[0] == "reminder"]
    assert reminders and {r[2] for r in reminders} == {"skipped"}
    clock.now = datetime.fromisoformat(start).replace(tzinfo=NY)  # the reminders' times pass
    Notifier(rt.uow, rt.settings, clock=clock).send_due()
    assert len(twilio.sent_to(CALLER)) == 2  # the confirmation and the cancellation


def test_a_reschedule_moves_the_reminders(app, org, db):
    reference = book(app, org, local_start(days=3, hour=11))["appointment"]["reference"]
    new_start = local_start(days=5, hour=14)
    move = envelope(
        tool_call("rescheduleAppointment", reference=reference, newStart=new_start),
        customer=CALLER,
    )
    assert "result" in post(app.test_client(), org, move).get_json()["results"][0]

    moved_to = datetime.fromisoformat(new_start).replace(tzinfo=NY)
    pending = {(r[0], r[1], r[3]) for r in rows(db, reference) if r[2] == "pending"}
    assert ("rescheduled", "sms") in {(k, c) for k, c, _ in pending}
    reminder_times = sorted({due for kind, _, due in pending if kind == "reminder"})
    assert reminder_times == [moved_to - timedelta(days=1), moved_to - timedelta(hours=2)]
    old = [r for r in rows(db, reference) if r[2] == "skipped"]
    assert {r[0] for r in old} == {"confirmation", "reminder"}


def _inbound(app, org_id: int, body: str, *, token: str = TOKEN, sender: str = CALLER):
    url = f"http://localhost/api/twilio/sms/{org_id}"
    # Every message has its own sid: one already handled would change nothing (#24).
    sid = "SM" + uuid.uuid4().hex
    form = {"From": sender, "To": "+14155550100", "Body": body, "MessageSid": sid}
    signature = RequestValidator(token).compute_signature(url, form)
    return app.test_client().post(url, data=form, headers={"X-Twilio-Signature": signature})


def test_stop_ends_sms_and_start_resumes(app, rt, org, db, twilio):
    forged = _inbound(app, org.id, "STOP", token="not-the-token")
    assert forged.status_code == 401
    stopped = _inbound(app, org.id, " stop ")
    assert stopped.status_code == 200 and stopped.mimetype == "text/xml"

    book(app, org, local_start(days=3, hour=9))
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()
    assert twilio.sent_to(CALLER) == []
    assert ("confirmation", "sms", "opted_out") in {(r[0], r[1], r[2]) for r in rows(db)}

    assert _inbound(app, org.id, "START").status_code == 200
    book(app, org, local_start(days=4, hour=9))
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()
    assert len(twilio.sent_to(CALLER)) == 1


def test_twilio_error_21610_marks_the_number_opted_out(app, rt, org, db, twilio):
    twilio.unsubscribed.add(CALLER)
    book(app, org, local_start(days=3, hour=9))
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()

    assert ("confirmation", "sms", "opted_out") in {(r[0], r[1], r[2]) for r in rows(db)}
    assert count(db, "SELECT count(*) FROM sms_opt_outs WHERE phone = %s", CALLER) == 1


def test_quiet_hours_move_a_reminder_to_before_they_start(app, org, db):
    cli(app, "org", "update", str(org.id), "--quiet-hours", "21:00-08:00")
    start = local_start(days=3, hour=9)  # the 2 h reminder would be due at 07:00
    reference = book(app, org, start)["appointment"]["reference"]
    starts_at = datetime.fromisoformat(start).replace(tzinfo=NY)

    sms = {r[4]: r[3] for r in rows(db, reference) if r[0] == "reminder" and r[1] == "sms"}
    email_ = {r[4]: r[3] for r in rows(db, reference) if r[0] == "reminder" and r[1] == "email"}
    evening_before = (starts_at - timedelta(days=1)).replace(hour=20, minute=59)
    assert sms[120] == evening_before.astimezone(UTC)
    assert email_[120] == (starts_at - timedelta(hours=2)).astimezone(UTC)  # email has no quiet


def test_numbers_outside_the_allowed_countries_get_no_sms(app, org, db):
    enable_sms(app, str(org.id), "--countries", "CA")
    book(app, org, local_start(days=3, hour=9))

    assert {r[1] for r in rows(db)} == {"email"}


def test_at_most_five_messages_a_day_to_one_number(app, rt, org, db, twilio):
    cli(app, "org", "update", str(org.id), "--reminders", "")
    for n in range(6):
        book(app, org, local_start(days=3 + n, hour=9))
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()

    assert len(twilio.sent_to(CALLER)) == 5
    sms = [r[2] for r in rows(db) if r[1] == "sms"]
    assert sorted(sms) == ["sent"] * 5 + ["skipped"]


def test_the_auth_token_is_sealed_and_never_printed(app, org, db):
    stored = db.execute(
        "SELECT twilio_auth_token FROM messaging_settings WHERE org_id = %s", (org.id,)
    ).fetchone()[0]
    printed = enable_sms(app, str(org.id))

    assert stored.startswith("fernet:") and TOKEN not in stored
    assert TOKEN not in printed and '"auth_token": "set"' in printed


def test_a_rotated_secret_key_still_opens_and_reseal_moves_to_the_new_one(env, org, db, twilio):
    new_key = "n" * 40
    rotated = make_app(
        env["DATABASE_URL"],
        SECRET_KEY=new_key,
        SECRET_KEY_PREVIOUS=SECRET_KEY,
        TWILIO_API_BASE_URL=twilio.base_url,
        SMTP_URL=env["SMTP_URL"],
    )
    try:
        assert '"twilio_tokens": 1' in cli(rotated, "secrets", "reseal")
        only_new = make_app(
            env["DATABASE_URL"],
            SECRET_KEY=new_key,
            TWILIO_API_BASE_URL=twilio.base_url,
            SMTP_URL=env["SMTP_URL"],
        )
        try:
            book(only_new, org, local_start(days=3, hour=9))
            Notifier(only_new.extensions[KEY].uow, only_new.extensions[KEY].settings).send_due()
        finally:
            only_new.extensions[KEY].engine.dispose()
    finally:
        rotated.extensions[KEY].engine.dispose()

    assert len(twilio.sent_to(CALLER)) == 1  # the token opened with the new key alone


def test_the_owner_lists_what_was_sent_with_numbers_masked(app, rt, org):
    reference = book(app, org, local_start(days=3, hour=9))["appointment"]["reference"]
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()

    lines = cli(app, "notifications", "list", str(org.id), "--reference", reference).splitlines()
    listed = [json.loads(line) for line in lines]
    sms = next(x for x in listed if x["channel"] == "sms" and x["kind"] == "confirmation")
    assert sms["to"] == "***0123" and sms["status"] == "sent" and sms["provider_id"]
    assert CALLER not in "".join(lines) and "maria@example.com" not in "".join(lines)


def test_a_send_in_doubt_that_never_reached_the_provider_is_sent(app, rt, org, db, twilio):
    book(app, org, local_start(days=3, hour=9))
    db.execute(
        "UPDATE notifications SET status = 'sending', attempted_at = now() - interval '1 hour' "
        "WHERE channel = 'sms' AND kind = 'confirmation'"
    )
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()

    assert len(twilio.sent_to(CALLER)) == 1


def test_a_no_show_is_recorded_sent_as_an_event_and_counted(app, rt, org, db):
    reference = book(app, org, local_start(days=3, hour=9))["appointment"]["reference"]
    refused = app.test_cli_runner().invoke(
        args=["appointment", "mark", reference, "--org", str(org.id), "--no-show"]
    )
    assert refused.exit_code == 1 and "has not started yet" in refused.output
    db.execute(
        "UPDATE appointments SET starts_at = now() - interval '1 hour', "
        "ends_at = now() - interval '30 minutes', blocked_until = now() - interval '30 minutes' "
        "WHERE reference = %s",
        (reference,),
    )

    marked = cli(app, "appointment", "mark", reference.lower(), "--org", str(org.id), "--no-show")

    assert json.loads(marked)["status"] == "no_show"
    events = [r[0] for r in db.execute("SELECT type FROM outbox_events ORDER BY id")]
    assert events[-1] == "appointment.no_show"
    assert {r[2] for r in rows(db, reference) if r[0] == "reminder"} == {"skipped"}
    scraped = app.test_client().get("/metrics").get_data(as_text=True)
    assert "booking_no_shows_total 1.0" in scraped
    again = app.test_cli_runner().invoke(
        args=["appointment", "mark", reference, "--org", str(org.id), "--completed"]
    )
    assert again.exit_code == 1 and "it is no_show" in again.output


def test_a_provider_that_answers_too_late_leaves_the_message_in_doubt_not_resent(
    app, rt, org, db, twilio
):
    cli(app, "org", "email", str(org.id), "--disable")
    book(app, org, local_start(days=3, hour=9))
    twilio.after_store = lambda message: time.sleep(1.5)  # stored, answered after our timeout
    try:
        Notifier(rt.uow, rt.settings, clock=StoppedClock(), provider_timeout_s=0.5).send_due()
    finally:
        twilio.after_store = None
    status = db.execute(
        "SELECT status FROM notifications WHERE channel = 'sms' AND kind = 'confirmation'"
    ).fetchone()[0]
    assert status == "sending"  # in doubt: not retried blind

    Notifier(rt.uow, rt.settings, clock=StoppedClock(), in_doubt_after=timedelta(0)).send_due()

    assert len(twilio.sent_to(CALLER)) == 1
    assert (
        db.execute(
            "SELECT status FROM notifications WHERE channel = 'sms' AND kind = 'confirmation'"
        ).fetchone()[0]
        == "sent"
    )


def test_a_message_in_flight_when_the_appointment_is_cancelled_is_not_sent_later(
    app, rt, org, db, twilio
):
    reference = book(app, org, local_start(days=3, hour=9))["appointment"]["reference"]
    # A worker began the confirmation and died before the provider got it...
    db.execute(
        "UPDATE notifications SET status = 'sending', attempted_at = now() - interval '1 hour' "
        "WHERE kind = 'confirmation'"
    )
    # ...and meanwhile the caller cancelled.
    cancel = envelope(tool_call("cancelAppointment", reference=reference), customer=CALLER)
    assert post(app.test_client(), org, cancel).status_code == 200

    Notifier(rt.uow, rt.settings, clock=StoppedClock(), in_doubt_after=timedelta(0)).send_due()

    sent = twilio.sent_to(CALLER)
    assert len(sent) == 1 and "is cancelled" in sent[0]  # never "you're booked" after it
    statuses = {r[0]: r[2] for r in rows(db, reference) if r[1] == "sms" and r[0] != "reminder"}
    assert statuses == {"confirmation": "skipped", "cancelled": "sent"}


def test_an_unreachable_provider_for_one_org_does_not_hold_up_another(app, rt, org, db, twilio):
    other = Org(*_org_with(app, rt, "Other Dental", account="AC" + "9" * 32))
    book(app, org, local_start(days=3, hour=9))
    body = envelope(tool_call(**booking(start=local_start(days=3, hour=10))), customer=CALLER)
    booked(post(app.test_client(), other, body))
    # Both in doubt; the other organization's (whose account the provider does not know, so
    # it cannot be asked) is the older one.
    db.execute(
        "UPDATE notifications SET status = 'sending', attempted_at = now() - "
        "CASE WHEN org_id = %s THEN interval '2 hours' ELSE interval '1 hour' END "
        "WHERE channel = 'sms' AND kind = 'confirmation'",
        (other.id,),
    )

    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()

    by_org = dict(
        db.execute(
            "SELECT org_id, status FROM notifications WHERE channel = 'sms' "
            "AND kind = 'confirmation'"
        ).fetchall()
    )
    assert by_org == {org.id: "sent", other.id: "sending"}


def _org_with(app, rt, name: str, account: str):
    created = create_org(rt.uow(), name=name, timezone="America/New_York")
    enable_sms(app, str(created.org.id), account=account)
    return created.org, created.secret


def test_a_confirmation_held_past_the_start_is_not_sent(app, rt, org, db, twilio):
    reference = book(app, org, local_start(days=3, hour=9))["appointment"]["reference"]
    db.execute(
        "UPDATE appointments SET starts_at = now() - interval '1 minute', ends_at = now() + "
        "interval '29 minutes', blocked_until = now() + interval '29 minutes'"
    )
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()

    assert twilio.sent_to(CALLER) == []
    assert {r[2] for r in rows(db, reference) if r[0] == "confirmation"} == {"skipped"}


def test_a_marked_appointment_keeps_its_chair(app, org, db):
    reference = book(app, org, local_start(days=3, hour=9))["appointment"]["reference"]
    db.execute("UPDATE appointments SET status = 'no_show' WHERE reference = %s", (reference,))

    with pytest.raises(psycopg.errors.ExclusionViolation):
        db.execute(
            "INSERT INTO appointments (org_id, contact_id, resource_id, reference, starts_at, "
            "ends_at, blocked_until, status) SELECT org_id, contact_id, resource_id, 'OTHER1', "
            "starts_at, ends_at, blocked_until, 'booked' FROM appointments WHERE reference = %s",
            (reference,),
        )


def test_the_auth_token_can_come_from_standard_input(app, org, db):
    result = app.test_cli_runner().invoke(
        args=[
            "org",
            "sms",
            str(org.id),
            "--account-sid",
            ACCOUNT,
            "--auth-token",
            "-",
            "--from",
            "+14155550100",
        ],
        input="from-stdin-token\n",
    )
    assert result.exit_code == 0, result.output
    assert "from-stdin-token" not in result.output


def test_stop_after_booking_stops_the_reminders_already_planned(app, rt, org, db, twilio):
    """The reminders were planned before the caller replied STOP; when they fall due, the
    opt-out holds for them as for any SMS (the emails still go)."""
    start = local_start(days=3, hour=10)
    reference = book(app, org, start)["appointment"]["reference"]
    starts_at = datetime.fromisoformat(start).replace(tzinfo=NY)
    clock = StoppedClock()
    notifier = Notifier(rt.uow, rt.settings, clock=clock)
    notifier.send_due()
    assert len(twilio.sent_to(CALLER)) == 1  # the confirmation, before STOP
    assert _inbound(app, org.id, "STOP").status_code == 200

    clock.now = starts_at - timedelta(hours=2)  # both reminders are due
    assert notifier.send_due() == 4  # two SMS and two emails handled
    assert len(twilio.sent_to(CALLER)) == 1
    reminders = {(r[1], r[4]): r[2] for r in rows(db, reference) if r[0] == "reminder"}
    assert reminders == {
        ("sms", 1440): "opted_out",
        ("sms", 120): "opted_out",
        ("email", 1440): "sent",
        ("email", 120): "sent",
    }


@pytest.mark.parametrize("season", ["spring", "fall"])
@pytest.mark.parametrize("zone_name", ["America/New_York", "Europe/London"])
def test_quiet_hours_across_a_dst_change_hold_a_reminder_to_the_right_local_time(
    app, rt, db, twilio, zone_name, season
):
    """Quiet 21:00-08:00; an appointment at 09:00 on the Sunday the clocks change. Its 2 h
    reminder (07:00, after the change) is quiet, so it goes out at 20:59 the evening before,
    which is before the change: in that evening's offset, not the appointment's."""
    zone = ZoneInfo(zone_name)
    created = create_org(rt.uow(), name="Weekend Clinic", timezone=zone_name)
    org = Org(created.org, created.secret)
    enable_sms(app, str(org.id))
    cli(app, "org", "update", str(org.id), "--quiet-hours", "21:00-08:00")
    cli(app, "org", "update", str(org.id), "--horizon-days", "400")
    add_resource(rt.uow(), org.id, "Weekend desk", ["mon-sun 08:00-18:00"])
    spring, fall = transitions(zone)
    day = spring if season == "spring" else fall
    eve = day - timedelta(days=1)
    assert (
        datetime.combine(eve, wall(21), zone).utcoffset()
        != datetime.combine(day, wall(7), zone).utcoffset()
    )  # the change falls between the evening before and the reminder's time

    reference = book(app, org, f"{day}T09:00", resource="Weekend desk")["appointment"]["reference"]
    expected = datetime.combine(eve, wall(20, 59), zone).astimezone(UTC)
    sms = {r[4]: r[3] for r in rows(db, reference) if r[0] == "reminder" and r[1] == "sms"}
    assert sms[120] == expected

    clock = StoppedClock()
    notifier = Notifier(rt.uow, rt.settings, clock=clock)
    clock.now = datetime.combine(eve, wall(9), zone)  # the confirmation and the 24 h reminder
    notifier.send_due()
    sent = len(twilio.sent_to(CALLER))
    clock.now = expected - timedelta(minutes=1)
    notifier.send_due()
    assert len(twilio.sent_to(CALLER)) == sent, "the reminder went out before 20:59 local"
    clock.now = expected
    notifier.send_due()
    assert len(twilio.sent_to(CALLER)) == sent + 1, "the reminder did not go out at 20:59 local"
    assert "a reminder of your appointment" in twilio.sent_to(CALLER)[-1]
