"""Domain events: collected by the unit of work, published only with a commit."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from booking_service.domain.errors import Refusal, StartRefused
from booking_service.domain.events import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentRescheduled,
)
from booking_service.domain.times import ParsedStart, utc_now
from booking_service.persistence.repositories.ledger import LedgerKey
from booking_service.use_cases.appointments import (
    Proof,
    cancel_appointment,
    reschedule_appointment,
)
from booking_service.use_cases.booking import BookingRequest, book_appointment
from booking_service.use_cases.contacts import CallerIdentity
from booking_service.use_cases.tool_calls import Answer, ChangeLimit, answer_once
from tests.support.helpers import count, local_start

NEW_YORK = ZoneInfo("America/New_York")
PHONE = "+14155550123"


def _start(days: int = 7, hour: int = 10) -> ParsedStart:
    return ParsedStart(
        datetime.fromisoformat(local_start(days=days, hour=hour)).replace(tzinfo=NEW_YORK)
    )


def _request(days: int = 7, hour: int = 10) -> BookingRequest:
    who = CallerIdentity(phone=PHONE, email="sam@example.com", name="Sam")
    return BookingRequest(
        who=who,
        start=_start(days, hour),
        duration_minutes=None,
        service=None,
        notes=None,
        own_number=True,
    )


def _book(runtime, org, days: int = 7):
    uow = runtime.uow()
    with uow:
        booking = book_appointment(
            uow, org.info, _request(days), now=utc_now(), vapi_call_id="c1", tool_call_id=None
        )
        uow.commit()
    return uow, booking


def test_a_booking_publishes_one_booked_event_with_its_facts(runtime, org):
    uow, booking = _book(runtime, org)

    assert [type(e) for e in uow.committed_events] == [AppointmentBooked]
    event = uow.committed_events[0]
    assert (event.org_id, event.reference, event.name, event.email, event.resource) == (
        org.id,
        booking.reference,
        "Sam",
        "sam@example.com",
        "Main",
    )
    assert event.starts_at == booking.starts_at and event.ends_at - event.starts_at == timedelta(
        minutes=30
    )


def test_a_booking_given_back_publishes_nothing(runtime, org):
    _book(runtime, org)
    again, booking = _book(runtime, org)

    assert booking.already_booked is True
    assert again.committed_events == []


def test_work_that_is_not_committed_publishes_nothing(runtime, org, db):
    uow = runtime.uow()
    with uow:
        book_appointment(
            uow, org.info, _request(), now=utc_now(), vapi_call_id="c1", tool_call_id=None
        )
    assert uow.committed_events == []
    assert count(db, "SELECT count(*) FROM appointments") == 0


def test_a_refusal_after_a_booking_drops_its_event_but_records_the_answer(runtime, org, db):
    """The idempotency use case rolls a refused step back to its savepoint: the booking and
    its event go, the ledger row with the refusal stays."""

    def perform(uow):
        book_appointment(
            uow, org.info, _request(), now=utc_now(), vapi_call_id="c1", tool_call_id="t1"
        )
        raise StartRefused(StartRefused.JUST_TAKEN, _start().start)

    uow = runtime.uow()
    answer = answer_once(
        uow,
        LedgerKey(org.id, "t1", "c1", PHONE, "call:c1", "bookAppointment", "f"),
        perform,
        refused=lambda refusal: Answer(error=type(refusal).__name__),
        change_limit=ChangeLimit(6, ("bookAppointment",)),
    )

    assert answer == Answer(error="StartRefused")
    assert uow.committed_events == []
    assert count(db, "SELECT count(*) FROM appointments") == 0
    assert count(db, "SELECT count(*) FROM tool_calls") == 1


def test_cancel_and_reschedule_publish_their_events(runtime, org):
    _, booking = _book(runtime, org)
    proof = Proof(verified_number=PHONE, reference=booking.reference)

    moved = runtime.uow()
    with moved:
        reschedule_appointment(
            moved, org.info, proof, start=None, new_start=_start(8, 11), now=utc_now()
        )
        moved.commit()
    cancelled = runtime.uow()
    with cancelled:
        cancel_appointment(cancelled, org.info, proof, start=None, reason="ill", now=utc_now())
        cancelled.commit()

    (rescheduled,) = moved.committed_events
    assert isinstance(rescheduled, AppointmentRescheduled)
    assert rescheduled.previous_start == booking.starts_at
    assert rescheduled.starts_at == _start(8, 11).start
    (gone,) = cancelled.committed_events
    assert isinstance(gone, AppointmentCancelled)
    assert (gone.reference, gone.reason) == (booking.reference, "ill")


def test_refusals_are_data(runtime, org):
    """A use case's refusal names no sentence: the start it refused and the alternatives."""
    yesterday = BookingRequest(
        who=CallerIdentity(phone=PHONE, email=None, name="Sam"),
        start=ParsedStart(utc_now() - timedelta(days=1)),
        duration_minutes=None,
        service=None,
        notes=None,
    )
    uow = runtime.uow()
    with uow:
        try:
            book_appointment(
                uow, org.info, yesterday, now=utc_now(), vapi_call_id=None, tool_call_id=None
            )
        except StartRefused as refusal:
            assert isinstance(refusal, Refusal)
            assert refusal.reason == "past"
            assert refusal.alternatives and all(s.start > utc_now() for s in refusal.alternatives)
            assert refusal.start == yesterday.start.start
        else:  # pragma: no cover
            raise AssertionError("a start in the past was booked")
