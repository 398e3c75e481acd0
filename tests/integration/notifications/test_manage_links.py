"""Manage links (#28): every confirmation and reminder carries PUBLIC_URL/b/<token>; the page
behind it moves and cancels its own appointment, and nothing else; the link is dead once the
appointment is cancelled; a link altered or for another appointment opens nothing."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from booking_service.domain import caller_messages
from booking_service.domain.manage_links import manage_token, read_manage_token
from booking_service.use_cases.send_messages import Notifier
from tests.support.helpers import local_start
from tests.support.notifications import CALLER, SECRET_KEY, StoppedClock, book, rows
from tests.support.web import csrf_token

ZONE = ZoneInfo("America/New_York")
LINK = re.compile(r"https?://[^/\s]+(/b/[A-Za-z0-9_.-]+)")


def link_path(body: str) -> str:
    found = LINK.search(body)
    assert found, f"no manage link in {body!r}"
    return found.group(1)


def send(rt) -> None:
    Notifier(rt.uow, rt.settings, clock=StoppedClock()).send_due()


def test_the_confirmation_carries_a_link_that_moves_and_cancels_its_own_booking(
    app, rt, org, twilio, mailbox, db
):
    mine = book(app, org, local_start(hour=10))["appointment"]["reference"]
    other = book(app, org, local_start(hour=11), phone="+14155550999")["appointment"]["reference"]
    send(rt)
    (confirmation,) = [b for b in twilio.sent_to(CALLER) if "booked" in b]
    assert confirmation.endswith(caller_messages.STOP_LINE)
    path = link_path(confirmation)
    mails = [m for m in mailbox[0].messages if "booked" in m["Subject"]]
    # The decoded text, not the wire form: quoted-printable may fold a long line mid-link.
    texts = [
        part.get_payload(decode=True).decode()
        for part in mails[0].walk()
        if part.get_content_type() == "text/plain"
    ]
    assert texts and path in texts[0]

    client = app.test_client()
    page = client.get(path)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and mine in html and other not in html
    assert page.headers["Referrer-Policy"] == "no-referrer"
    # The move list opens on the appointment's own day.
    day = local_start()[:10]
    starts = re.findall(r'<option value="([^"]+)"', html)
    assert starts and all(s.startswith(day) for s in starts)
    target = next(s for s in starts if "T14:00" in s)

    # Without the page's CSRF token nothing changes.
    assert client.post(f"{path}/move", data={"start": target}).status_code == 400
    moved = client.post(f"{path}/move", data={"start": target, "csrf_token": csrf_token(html)})
    assert moved.status_code == 302
    assert db.execute(
        "SELECT to_char(starts_at AT TIME ZONE 'America/New_York', 'HH24:MI') FROM appointments "
        "WHERE reference = %s",
        (mine,),
    ).fetchone() == ("14:00",)
    source = db.execute(
        "SELECT payload->'data'->>'source' FROM outbox_events "
        "WHERE type = 'appointment.rescheduled'"
    ).fetchone()
    assert source == ("link",)
    send(rt)
    moved_sms = [b for b in twilio.sent_to(CALLER) if "moved" in b]
    assert len(moved_sms) == 1 and link_path(moved_sms[0]) == path

    html = client.get(path).get_data(as_text=True)
    cancelled = client.post(f"{path}/cancel", data={"csrf_token": csrf_token(html)})
    assert cancelled.status_code == 200 and mine in cancelled.get_data(as_text=True)
    statuses = dict(db.execute("SELECT reference, status FROM appointments").fetchall())
    assert statuses == {mine: "cancelled", other: "booked"}
    # Dead after the cancellation: the page and every action say the same "no longer works".
    assert client.get(path).status_code == 404
    assert client.post(f"{path}/cancel", data={"csrf_token": csrf_token(html)}).status_code == 404
    send(rt)
    (cancel_sms,) = [b for b in twilio.sent_to(CALLER) if "cancelled" in b]
    assert "/b/" not in cancel_sms


def test_a_false_or_altered_link_opens_nothing(app, rt, org, twilio):
    book(app, org, local_start(hour=10))
    send(rt)
    path = link_path(twilio.sent_to(CALLER)[0])
    token = path.removeprefix("/b/")
    org_id, appointment_id = read_manage_token([SECRET_KEY], token)
    client = app.test_client()
    for bad in (
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        manage_token([SECRET_KEY], org_id, appointment_id + 1),  # signed, no such booking
        manage_token(["another key " * 4], org_id, appointment_id),
        "nonsense",
    ):
        answer = client.get(f"/b/{bad}")
        assert answer.status_code == 404
        assert "no longer works" in answer.get_data(as_text=True)


def test_every_reminder_carries_the_link_and_a_cancellation_does_not(app, rt, org, twilio, db):
    book(app, org, local_start(hour=10))
    kinds = {kind for kind, *_ in rows(db)}
    assert caller_messages.REMINDER in kinds
    body = caller_messages.with_manage_link(
        caller_messages.REMINDER, "Hi. " + caller_messages.STOP_LINE, "https://x.example/b/t"
    )
    assert body == "Hi. Manage your appointment: https://x.example/b/t " + caller_messages.STOP_LINE
    assert caller_messages.with_manage_link(caller_messages.CANCELLED, "Hi.", "u") == "Hi."
    # A confirmation asks for 1 or 2 (#29): the link comes before that, so the text still ends
    # with what the caller may answer.
    replies = f"{caller_messages.REPLY_LINE} {caller_messages.STOP_LINE}"
    asked = caller_messages.with_manage_link(caller_messages.CONFIRMATION, "Hi. " + replies, "u")
    assert asked == "Hi. Manage your appointment: u " + replies


def test_a_taken_time_is_refused_and_the_booking_stays(app, rt, org, twilio, db):
    mine = book(app, org, local_start(hour=10))["appointment"]["reference"]
    book(app, org, local_start(hour=11), phone="+14155550999")
    send(rt)
    path = link_path(twilio.sent_to(CALLER)[0])
    client = app.test_client()
    html = client.get(path).get_data(as_text=True)
    taken = datetime.fromisoformat(local_start(hour=11)).replace(tzinfo=ZONE).isoformat()
    refused = client.post(f"{path}/move", data={"start": taken, "csrf_token": csrf_token(html)})
    assert refused.status_code == 409
    assert "taken" in refused.get_data(as_text=True)
    assert db.execute(
        "SELECT to_char(starts_at AT TIME ZONE 'America/New_York', 'HH24:MI') FROM appointments "
        "WHERE reference = %s",
        (mine,),
    ).fetchone() == ("10:00",)


def test_the_link_is_dead_once_the_appointment_is_over(app, rt, org, twilio, db):
    reference = book(app, org, local_start(hour=10))["appointment"]["reference"]
    send(rt)
    path = link_path(twilio.sent_to(CALLER)[0])
    client = app.test_client()
    assert client.get(path).status_code == 200
    db.execute(
        "UPDATE appointments SET starts_at = now() - interval '2 hours', "
        "ends_at = now() - interval '90 minutes', blocked_until = now() - interval '90 minutes' "
        "WHERE reference = %s",
        (reference,),
    )
    assert client.get(path).status_code == 404
