"""Twilio's inbound-SMS webhook acts on each message once, by its MessageSid: a signed STOP
replayed after a START does not opt the number out again (#24)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from twilio.request_validator import RequestValidator

from booking_service.domain.times import utc_now
from booking_service.runtime.extensions import KEY
from booking_service.use_cases.messaging import forget_old_inbound
from booking_service.use_cases.orgs import create_org
from booking_service.worker.loop import Worker
from tests.support.app import Org, make_app
from tests.support.helpers import count
from tests.support.notifications import ACCOUNT, CALLER, TOKEN, enable_sms
from tests.support.twilio_server import FakeTwilio, fake_twilio


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with fake_twilio(ACCOUNT, TOKEN) as server:
        yield server


@pytest.fixture
def app(database_url, twilio):
    application = make_app(database_url, SECRET_KEY="k" * 40, TWILIO_API_BASE_URL=twilio.base_url)
    yield application
    application.extensions[KEY].engine.dispose()


@pytest.fixture
def sms_org(app, rt) -> Org:
    created = create_org(rt.uow(), name="Bright Smile Dental", timezone="America/New_York")
    enable_sms(app, str(created.org.id))
    return Org(created.org, created.secret)


def signed(app, org_id: int, form: dict[str, str]):
    """POST the form as Twilio would, with a valid X-Twilio-Signature."""
    url = f"http://localhost/api/twilio/sms/{org_id}"
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    return app.test_client().post(url, data=form, headers={"X-Twilio-Signature": signature})


def message(body: str, sid: str | None = None) -> dict[str, str]:
    return {
        "From": CALLER,
        "To": "+14155550100",
        "Body": body,
        "MessageSid": sid or "SM" + uuid.uuid4().hex,
    }


def opted_out(db) -> bool:
    return count(db, "SELECT count(*) FROM sms_opt_outs WHERE phone = %s", CALLER) == 1


def test_a_replayed_stop_after_a_start_leaves_the_number_opted_in(app, sms_org, db):
    stop = message("STOP")
    first = signed(app, sms_org.id, stop)
    assert first.status_code == 200 and opted_out(db)
    assert signed(app, sms_org.id, message("START")).status_code == 200
    assert not opted_out(db)

    replayed = signed(app, sms_org.id, stop)  # the same request, byte for byte, still signed

    assert replayed.status_code == 200
    assert replayed.get_data() == first.get_data() and replayed.mimetype == "text/xml"
    assert not opted_out(db)
    assert count(db, "SELECT count(*) FROM sms_inbound WHERE org_id = %s", sms_org.id) == 2


def test_the_same_sid_in_another_organization_is_its_own_message(app, sms_org, rt, db):
    other = create_org(rt.uow(), name="Other Clinic", timezone="America/New_York").org
    enable_sms(app, str(other.id))
    sid = "SM" + uuid.uuid4().hex

    assert signed(app, sms_org.id, message("STOP", sid)).status_code == 200
    assert signed(app, other.id, message("STOP", sid)).status_code == 200

    assert count(db, "SELECT count(*) FROM sms_opt_outs WHERE phone = %s", CALLER) == 2


@pytest.mark.parametrize("sid", [None, "", "SM" + "x" * 80, "SM'; --"])
def test_a_signed_message_without_a_usable_sid_is_refused_and_changes_nothing(
    app, sms_org, db, sid
):
    form = message("STOP")
    if sid is None:
        del form["MessageSid"]
    else:
        form["MessageSid"] = sid

    response = signed(app, sms_org.id, form)

    assert response.status_code == 400
    assert "MessageSid" in response.get_json()["error"]["message"]
    assert not opted_out(db)


def test_old_sids_are_forgotten_and_recent_ones_kept(app, rt, sms_org, db):
    signed(app, sms_org.id, message("STOP", "SM" + "1" * 32))
    signed(app, sms_org.id, message("START", "SM" + "2" * 32))
    db.execute(
        "UPDATE sms_inbound SET received_at = now() - interval '500 days' WHERE message_sid = %s",
        ("SM" + "1" * 32,),
    )

    assert forget_old_inbound(rt.uow(), utc_now() - timedelta(days=400)) == 1
    assert db.execute("SELECT message_sid FROM sms_inbound").fetchall() == [("SM" + "2" * 32,)]


def test_the_worker_forgets_old_sids_on_its_housekeeping_round(app, rt, sms_org, db):
    signed(app, sms_org.id, message("STOP", "SM" + "3" * 32))
    db.execute("UPDATE sms_inbound SET received_at = now() - interval '500 days'")
    Worker(rt.uow, rt.settings).forget_old_inbound_messages()
    assert count(db, "SELECT count(*) FROM sms_inbound") == 0
