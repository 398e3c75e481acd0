"""Notifications: messaging settings, the messages planned for callers, SMS opt-outs.

The worker claims one due message at a time (FOR UPDATE SKIP LOCKED), records that it is
sending and commits *before* calling the provider, then records the outcome. A row left in
`sending` by a worker that died is in doubt: it is resolved by asking the provider, never sent
again blind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

from sqlalchemy import Text, any_, bindparam, insert, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from booking_service.persistence.db import table
from booking_service.persistence.models import (
    MessagingSettings,
    Notification,
    SmsInbound,
    SmsOptOut,
)
from booking_service.persistence.repositories.driver import HotStatement

_settings = table(MessagingSettings)
_notifications = table(Notification)
_opt_outs = table(SmsOptOut)
_inbound = table(SmsInbound)


@dataclass(frozen=True)
class SettingsRow:
    """An organization's messaging settings (the auth token still sealed)."""

    org_id: int
    sms_enabled: bool
    twilio_account_sid: str | None
    twilio_auth_token: str | None
    sms_from: str | None
    messaging_service_sid: str | None
    sms_countries: list[str] | None
    email_enabled: bool
    email_from: str | None
    email_reply_to: str | None


@dataclass(frozen=True)
class AudienceRow:
    """What planning needs in the change's transaction (the outbox's booking_add_event
    returns it with the event it writes, repositories/outbox.py)."""

    business: str
    timezone: str
    phone_region: str
    reminder_minutes: list[int]
    quiet_from: time | None
    quiet_until: time | None
    phone: str | None
    sms_enabled: bool
    sms_countries: list[str] | None
    email_enabled: bool


@dataclass(frozen=True)
class DueMessage:
    """A claimed message with what sending it needs."""

    id: int
    org_id: int
    appointment_id: int
    kind: str
    channel: str
    to_address: str
    body: str
    attempts: int
    attempted_at: datetime | None
    created_at: datetime
    business: str
    timezone: str
    reference: str
    starts_at: datetime
    ends_at: datetime
    appointment_status: str
    changed_at: datetime | None
    opted_out: bool
    sms_per_day: int
    email_per_day: int
    phone_region: str
    # Messages to the address in the last day (claim_due fills it in; 0 elsewhere).
    sent_today: int = 0


@dataclass(frozen=True)
class NotificationRow:
    """A message as listed for the owner."""

    id: int
    reference: str
    kind: str
    channel: str
    to_address: str
    offset_minutes: int | None
    due_at: datetime
    status: str
    provider_id: str | None
    sent_at: datetime | None
    error: str | None


_SETTINGS_COLUMNS = [c for c in _settings.c if c.name in SettingsRow.__dataclass_fields__]

# The statements of every SMS reply (the Twilio webhook, #29), on the driver as the booking
# path's are (#30): built and compiled once, run through the session's psycopg connection.
_SETTINGS = HotStatement(select(*_SETTINGS_COLUMNS).where(_settings.c.org_id == bindparam("p_org")))
_REMEMBER_INBOUND = HotStatement(
    pg_insert(_inbound)
    .values(org_id=bindparam("p_org"), message_sid=bindparam("p_sid"))
    .on_conflict_do_nothing(index_elements=[_inbound.c.org_id, _inbound.c.message_sid])
    .returning(_inbound.c.message_sid)
)
_RECORD_ANSWER = HotStatement(
    update(_inbound)
    .where(_inbound.c.org_id == bindparam("p_org"), _inbound.c.message_sid == bindparam("p_sid"))
    .values(answer=bindparam("p_answer", type_=Text))
)
# The kinds as one array parameter: an IN list would make the SQL change with its length.
_LAST_ABOUT = HotStatement(
    select(_notifications.c.kind, _notifications.c.appointment_id)
    .where(
        _notifications.c.org_id == bindparam("p_org"),
        _notifications.c.channel == "sms",
        _notifications.c.to_address == bindparam("p_phone"),
        _notifications.c.status == "sent",
        _notifications.c.kind == any_(bindparam("p_kinds", type_=ARRAY(Text))),
    )
    .order_by(_notifications.c.sent_at.desc(), _notifications.c.id.desc())
    .limit(1)
)


# The columns of a claimed message: its row, the appointment as it is now, and whether the
# number opted out. (How many went to the address in a day is read by claim_due, under a lock.)
_DUE_COLUMNS = """
    n.id, n.org_id, n.appointment_id, n.kind, n.channel, n.to_address, n.body, n.attempts,
    n.attempted_at, n.created_at, o.name AS business, o.timezone, a.reference, a.starts_at,
    a.ends_at, a.status AS appointment_status, o.sms_per_day, o.email_per_day, o.phone_region,
    coalesce(a.cancelled_at, a.rescheduled_at) AS changed_at,
    EXISTS (SELECT 1 FROM sms_opt_outs x
             WHERE n.channel = 'sms' AND x.org_id = n.org_id AND x.phone = n.to_address)
      AS opted_out
"""

_CLAIM_DUE = text(
    f"""
    SELECT {_DUE_COLUMNS}
      FROM notifications n
      JOIN organizations o ON o.id = n.org_id
      JOIN appointments a ON a.org_id = n.org_id AND a.id = n.appointment_id
     WHERE n.status = 'pending' AND n.due_at <= :p_now
     ORDER BY n.due_at
     LIMIT 1
       FOR UPDATE OF n SKIP LOCKED
    """  # noqa: S608 - put together from this module's constants only
)

_IN_DOUBT = text(
    f"""
    SELECT {_DUE_COLUMNS}
      FROM notifications n
      JOIN organizations o ON o.id = n.org_id
      JOIN appointments a ON a.org_id = n.org_id AND a.id = n.appointment_id
     WHERE n.status = 'sending' AND n.attempted_at < :p_before
     ORDER BY n.attempted_at
     LIMIT 1
       FOR UPDATE OF n SKIP LOCKED
    """  # noqa: S608 - put together from this module's constants only
)


class NotificationRepository:
    """Settings, planned messages, sending state and opt-outs."""

    def __init__(self, session: Session):
        self.session = session

    # --- settings --------------------------------------------------------------------------

    def settings(self, org_id: int) -> SettingsRow | None:
        row = _SETTINGS.execute(self.session, {"p_org": org_id}).first()
        return SettingsRow(**row._asdict()) if row is not None else None

    def save_settings(self, org_id: int, values: dict) -> SettingsRow:
        """Insert or change an organization's settings (only the given columns)."""
        new = pg_insert(_settings).values(org_id=org_id, **values)
        upsert = new.on_conflict_do_update(
            index_elements=[_settings.c.org_id],
            set_={**{k: new.excluded[k] for k in values}, "updated_at": text("now()")},
        ).returning(*_SETTINGS_COLUMNS)
        return SettingsRow(**self.session.execute(upsert).one()._mapping)

    def sealed_tokens(self) -> list[tuple[int, str]]:
        """Every stored auth token (for re-sealing under a new key), rows locked."""
        rows = self.session.execute(
            select(_settings.c.org_id, _settings.c.twilio_auth_token)
            .where(_settings.c.twilio_auth_token.is_not(None))
            .with_for_update()
        )
        return [(r.org_id, r.twilio_auth_token) for r in rows]

    # --- planning (in the change's transaction) --------------------------------------------

    def add(self, org_id: int, appointment_id: int, planned: list) -> None:
        """Write planned messages (notifications.PlannedMessage) for an appointment."""
        if not planned:
            return
        self.session.execute(
            insert(_notifications),
            [
                {
                    "org_id": org_id,
                    "appointment_id": appointment_id,
                    "kind": p.kind,
                    "channel": p.channel,
                    "to_address": p.to_address,
                    "offset_minutes": p.offset_minutes,
                    "due_at": p.due_at,
                    "body": p.body,
                }
                for p in planned
            ],
        )

    def drop_pending(self, org_id: int, appointment_id: int, reason: str) -> None:
        """Skip what was still waiting for an appointment (it moved, was cancelled, is over)."""
        self.session.execute(
            update(_notifications)
            .where(
                _notifications.c.org_id == org_id,
                _notifications.c.appointment_id == appointment_id,
                _notifications.c.status == "pending",
            )
            .values(status="skipped", error=reason)
        )

    # --- sending (the worker) --------------------------------------------------------------

    def claim_due(self, now: datetime) -> DueMessage | None:
        """The oldest due message, row-locked; with the address's count of the last day read
        under a per-address lock, so two workers cannot both send the fifth message."""
        row = self.session.execute(_CLAIM_DUE, {"p_now": now}).first()
        if row is None:
            return None
        self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"notify:{row.org_id}:{row.to_address}"},
        )
        sent_today = self.session.execute(
            text(
                "SELECT count(*) FROM notifications s WHERE s.org_id = :org AND "
                "s.to_address = :to AND s.id <> :id AND s.status IN ('sent', 'sending') "
                "AND coalesce(s.sent_at, :p_now) > :p_now - interval '1 day'"
            ),
            {"org": row.org_id, "to": row.to_address, "id": row.id, "p_now": now},
        ).scalar_one()
        return DueMessage(**row._mapping, sent_today=sent_today)

    def provider_ids(self, org_id: int, to_address: str) -> frozenset[str]:
        """The provider ids already recorded for messages to an address."""
        rows = self.session.execute(
            select(_notifications.c.provider_id).where(
                _notifications.c.org_id == org_id,
                _notifications.c.to_address == to_address,
                _notifications.c.provider_id.is_not(None),
            )
        )
        return frozenset(r.provider_id for r in rows)

    def recheck_later(self, message_id: int, at: datetime, error: str) -> None:
        """An in-doubt message whose provider could not be asked: ask again later."""
        self.session.execute(
            update(_notifications)
            .where(_notifications.c.id == message_id, _notifications.c.status == "sending")
            .values(attempted_at=at, error=error)
        )

    def claim_in_doubt(self, before: datetime) -> DueMessage | None:
        """A message a worker began to send before `before` and never recorded."""
        row = self.session.execute(_IN_DOUBT, {"p_before": before}).first()
        return DueMessage(**row._mapping) if row is not None else None

    def mark_sending(self, message_id: int, at: datetime) -> None:
        self.session.execute(
            update(_notifications)
            .where(_notifications.c.id == message_id)
            .values(status="sending", attempted_at=at, attempts=_notifications.c.attempts + 1)
        )

    def finish(
        self,
        message_id: int,
        status: str,
        *,
        provider_id: str | None = None,
        error: str | None = None,
        sent_at: datetime | None = None,
        retry_at: datetime | None = None,
        expect: str = "sending",
    ) -> None:
        """Record the outcome: sent, failed, skipped, opted_out; or pending again at
        `retry_at`. Only a row still in the `expect`ed status changes."""
        values: dict = {"status": status, "error": error}
        if provider_id is not None:
            values["provider_id"] = provider_id
        if sent_at is not None:
            values["sent_at"] = sent_at
        if retry_at is not None:
            values["due_at"] = retry_at
        self.session.execute(
            update(_notifications)
            .where(_notifications.c.id == message_id, _notifications.c.status == expect)
            .values(**values)
        )

    # --- opt-outs --------------------------------------------------------------------------

    def opt_out(self, org_id: int, phone: str, source: str) -> None:
        self.session.execute(
            pg_insert(_opt_outs)
            .values(org_id=org_id, phone=phone, source=source)
            .on_conflict_do_nothing(index_elements=[_opt_outs.c.org_id, _opt_outs.c.phone])
        )

    def opt_in(self, org_id: int, phone: str) -> None:
        self.session.execute(
            _opt_outs.delete().where(_opt_outs.c.org_id == org_id, _opt_outs.c.phone == phone)
        )

    def remember_inbound(self, org_id: int, message_sid: str) -> bool:
        """Record that the inbound message `message_sid` is being acted on, in the caller's
        transaction; False when it already was (a retry or a replay: act on nothing). A
        second request with the same sid waits for the first one's transaction and then
        gets False."""
        row = _REMEMBER_INBOUND.execute(self.session, {"p_org": org_id, "p_sid": message_sid})
        return row.first() is not None

    def answered(self, org_id: int, message_sid: str) -> str | None:
        """The answer recorded for an inbound message already acted on (None: none)."""
        return self.session.execute(
            select(_inbound.c.answer).where(
                _inbound.c.org_id == org_id, _inbound.c.message_sid == message_sid
            )
        ).scalar_one_or_none()

    def record_answer(self, org_id: int, message_sid: str, answer: str | None) -> None:
        """Keep the answer to an inbound reply with its sid, so a retry is answered the same."""
        _RECORD_ANSWER.execute(
            self.session, {"p_org": org_id, "p_sid": message_sid, "p_answer": answer}
        )

    def last_about(self, org_id: int, phone: str, kinds: tuple[str, ...]) -> tuple[str, int] | None:
        """The kind and appointment of the newest SMS of `kinds` sent to `phone`: what a reply
        from that number answers (#29)."""
        row = _LAST_ABOUT.execute(
            self.session, {"p_org": org_id, "p_phone": phone, "p_kinds": list(kinds)}
        ).first()
        return (row.kind, row.appointment_id) if row is not None else None

    def forget_inbound(self, before: datetime) -> int:
        """Drop the records of inbound messages received before `before`, every organization;
        returns how many."""
        return self.session.execute(
            _inbound.delete().where(_inbound.c.received_at < before)
        ).rowcount  # type: ignore[attr-defined]

    # --- the owner's view ------------------------------------------------------------------

    def no_shows(self) -> int:
        """Appointments marked as missed, every organization (for /metrics)."""
        return self.session.execute(
            text("SELECT count(*) FROM appointments WHERE status = 'no_show'")
        ).scalar_one()

    def status_counts(self) -> dict[str, int]:
        """Messages by status, every organization (for /metrics)."""
        rows = self.session.execute(
            text("SELECT status, count(*) AS n FROM notifications GROUP BY status")
        )
        return {r.status: r.n for r in rows}

    def listing(self, org_id: int, reference: str | None = None) -> list[NotificationRow]:
        query = text(
            """
            SELECT n.id, a.reference, n.kind, n.channel, n.to_address, n.offset_minutes,
                   n.due_at, n.status, n.provider_id, n.sent_at, n.error
              FROM notifications n
              JOIN appointments a ON a.org_id = n.org_id AND a.id = n.appointment_id
             WHERE n.org_id = :org_id AND (CAST(:reference AS text) IS NULL
                                           OR a.reference = :reference)
             ORDER BY n.due_at, n.id
            """
        )
        rows = self.session.execute(query, {"org_id": org_id, "reference": reference})
        return [NotificationRow(**r._mapping) for r in rows]
