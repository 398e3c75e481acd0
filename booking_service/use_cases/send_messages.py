"""Sends the confirmations and reminders that are due (run by the worker beside webhooks).

Exactly once, in the open: a due message is claimed (FOR UPDATE SKIP LOCKED), marked `sending`
and committed *before* the provider is called, then its outcome is recorded. A worker that dies
between the two leaves the row in `sending`; after IN_DOUBT_AFTER it is resolved by asking the
provider whether the message exists (Twilio's message list: same number, same text, created
since the attempt): found → sent; not there → it never left, and it is sent. An email in doubt
cannot be asked about (SMTP has no lookup) and is marked failed, never sent twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from zoneinfo import ZoneInfo

from booking_service.config import Settings
from booking_service.domain import caller_messages, outbox, recipients
from booking_service.domain.normalize import mask_phone
from booking_service.domain.times import utc_now
from booking_service.persistence.repositories.counters import EMAIL_BUDGET, SMS_BUDGET
from booking_service.persistence.repositories.notifications import DueMessage, SettingsRow
from booking_service.persistence.secrets_box import SecretBox, SecretsUnavailable
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.ports.messages import (
    EmailSender,
    Invitation,
    MessageChannel,
    OutgoingMessage,
    SmsSender,
)
from booking_service.use_cases.manage_links import manage_link

log = logging.getLogger(__name__)

IN_DOUBT_AFTER = timedelta(minutes=2)
GIVE_UP_AFTER = timedelta(days=1)
RESOLVE_PER_ROUND = 50
MAX_ATTEMPTS = 3
RETRY_DELAY = timedelta(minutes=5)
PROVIDER_TIMEOUT_S = 10


@dataclass(frozen=True)
class Outcome:
    """What became of one attempt."""

    # sent | failed | opted_out | pending (certainly not sent: retry) | sending (perhaps sent:
    # stays in doubt until the provider is asked)
    status: str
    provider_id: str | None = None
    error: str | None = None


class Notifier:
    """Sends due messages. `clock` decides what is due (tests move it)."""

    def __init__(
        self,
        uow_factory: Callable[[], AbstractUnitOfWork],
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utc_now,
        in_doubt_after: timedelta = IN_DOUBT_AFTER,
        provider_timeout_s: float = PROVIDER_TIMEOUT_S,
        channels: Mapping[str, MessageChannel] | None = None,
    ):
        self._uow = uow_factory
        self._settings = settings
        self._clock = clock
        self._in_doubt_after = in_doubt_after
        self._timeout_s = provider_timeout_s
        if channels is None:
            # The front ends pass their adapters; this default serves tests and the CLI.
            from booking_service.adapters.registry import message_channels

            channels = message_channels()
        self._channels = channels

    def send_due(self, stop: Callable[[], bool] = lambda: False) -> int:
        """Resolve messages in doubt, then send everything due; returns how many were handled."""
        handled = 0
        # Bounded: a row whose provider cannot be asked is put back, and may come round again.
        for _ in range(RESOLVE_PER_ROUND):
            if stop() or not self._resolve_one():
                break
            handled += 1
        while not stop() and self._send_one():
            handled += 1
        return handled

    # --- one message -----------------------------------------------------------------------

    def _send_one(self) -> bool:
        now = self._clock()
        with self._uow() as uow:
            due = uow.notifications.claim_due(now)
            if due is None:
                return False
            settings = uow.notifications.settings(due.org_id)
            refusal = self._refusal(due, settings, now) or self._over_budget(uow, due, now)
            if refusal is not None:
                status, reason = refusal
                uow.notifications.finish(due.id, status, error=reason, expect="pending")
                uow.commit()
                log.info("message %s not sent: %s", due.id, reason)
                return True
            # Committed before the provider is called: a crash from here on leaves the row in
            # doubt, to be resolved by asking the provider (never sent again blind).
            uow.notifications.mark_sending(due.id, utc_now())
            uow.commit()
            box = uow.secrets
        assert settings is not None  # _refusal answers for a missing one
        outcome = self._deliver(due, settings, box)
        with self._uow() as uow:
            self._record(uow, due, outcome, now)
            uow.commit()
        log.info(
            "message %s (%s %s to %s): %s %s",
            due.id,
            due.kind,
            due.channel,
            mask_phone(due.to_address) if due.channel == caller_messages.SMS else "an address",
            outcome.status,
            outcome.error or "",
        )
        return True

    def _refusal(
        self, due: DueMessage, settings: SettingsRow | None, now: datetime
    ) -> tuple[str, str] | None:
        """Why a due message must not go out (status, reason), or None."""
        if due.kind == caller_messages.REMINDER and due.appointment_status != "booked":
            return "skipped", f"the appointment is {due.appointment_status}"
        if (
            due.changed_at is not None
            and due.created_at < due.changed_at
            and due.kind != caller_messages.WAITLIST_OFFER  # about the freed time, not this
        ):
            # Planned before the appointment last moved or was cancelled (it was in flight
            # when that happened, so it escaped being dropped): it says something untrue now.
            return "skipped", "superseded by a later change of the appointment"
        if due.kind != caller_messages.CANCELLED and due.starts_at <= now:
            return "skipped", "the appointment has already started"
        if due.channel == caller_messages.SMS:
            if settings is None or not settings.sms_enabled:
                return "skipped", "SMS is off for this organization"
            if due.opted_out:
                return "opted_out", "the number opted out (STOP)"
            # Checked again at sending: a message planned before a rule tightened obeys it too.
            if not recipients.may_text(
                due.to_address, recipients.sms_countries(settings.sms_countries, due.phone_region)
            ):
                return "skipped", "not a number that can receive texts"
        else:
            if settings is None or not settings.email_enabled:
                return "skipped", "email is off for this organization"
            if not self._settings.smtp_url:
                return "failed", "SMTP_URL is not set"
            if not recipients.may_email(due.to_address):
                return "skipped", "not an address on a public domain name"
        if due.sent_today >= caller_messages.DAILY_LIMIT:
            return "skipped", f"{caller_messages.DAILY_LIMIT} messages to this address in a day"
        return None

    def _over_budget(
        self, uow: AbstractUnitOfWork, due: DueMessage, now: datetime
    ) -> tuple[str, str] | None:
        """Count this message against the organization's daily budget for its channel (a
        first attempt only: a retry was counted); over it, why not. The first refusal of a
        day tells the owner: event `messages.budget_reached` (the health page notes it)."""
        if due.attempts > 0:
            return None
        sms = due.channel == caller_messages.SMS
        budget = due.sms_per_day if sms else due.email_per_day
        zone = ZoneInfo(due.timezone)
        day = recipients.day_start(now, zone)
        used = uow.counters.count(due.org_id, SMS_BUDGET if sms else EMAIL_BUDGET, day)
        if used <= budget:
            return None
        if used == budget + 1:
            uow.outbox.add_org_event(
                due.org_id,
                outbox.new_event_id(),
                outbox.BUDGET_REACHED,
                outbox.budget_payload(
                    due.org_id, due.channel, budget, day.astimezone(zone).date().isoformat(), now
                ),
            )
            log.warning(
                "organization %s: daily %s budget (%d) used up", due.org_id, due.channel, budget
            )
        what = "SMS" if sms else "email"
        return "skipped", f"the organization's daily {what} budget ({budget}) is used up"

    def _sms_sender(self, settings: SettingsRow, box: SecretBox) -> SmsSender:
        return SmsSender(
            base_url=self._settings.twilio_api_base_url,
            account_sid=settings.twilio_account_sid or "",
            auth_token=box.open(settings.twilio_auth_token or ""),
            sms_from=settings.sms_from,
            messaging_service_sid=settings.messaging_service_sid,
        )

    def _deliver(self, due: DueMessage, settings: SettingsRow, box: SecretBox) -> Outcome:
        sender: SmsSender | EmailSender
        if due.channel == caller_messages.SMS:
            try:
                sender = self._sms_sender(settings, box)
            except SecretsUnavailable as exc:
                return Outcome("failed", error=str(exc))
            message = OutgoingMessage(to=due.to_address, body=self._body(due))
        else:
            sender = EmailSender(
                smtp_url=self._settings.smtp_url,
                from_address=settings.email_from or "",
                reply_to=settings.email_reply_to,
            )
            message = OutgoingMessage(
                to=due.to_address,
                body=self._body(due),
                subject=caller_messages.email_subject(due.kind, due.business),
                invitation=self._invitation(due, settings),
            )
        sent = self._channels[due.channel].send(sender, message, timeout_s=self._timeout_s)
        if sent.opted_out:
            return Outcome("opted_out", error=sent.error)
        if sent.provider_id:
            return Outcome("sent", provider_id=sent.provider_id)
        if sent.in_doubt:
            return Outcome("sending", error=sent.error)
        return self._failed(due, sent.error, sent.retry)

    def _body(self, due: DueMessage) -> str:
        """The text as sent: the planned body with the caller's manage link (none without
        SECRET_KEY, which signs it). The same every time, so a message in doubt is found."""
        return caller_messages.with_manage_link(
            due.kind, due.body, manage_link(self._settings, due.org_id, due.appointment_id)
        )

    @staticmethod
    def _failed(due: DueMessage, error: str | None, retry: bool) -> Outcome:
        if retry and due.attempts + 1 < MAX_ATTEMPTS:
            return Outcome("pending", error=error)
        return Outcome("failed", error=error)

    @staticmethod
    def _invitation(due: DueMessage, settings: SettingsRow) -> Invitation | None:
        if due.kind == caller_messages.REMINDER:
            return None
        cancelled = due.kind == caller_messages.CANCELLED
        # Each change is a later SEQUENCE of the same UID, so calendars apply it.
        sequence = int(due.changed_at.timestamp()) if due.changed_at else 0
        return Invitation(
            uid=caller_messages.calendar_uid(due.org_id, due.reference),
            sequence=sequence,
            method="CANCEL" if cancelled else "REQUEST",
            starts_at=due.starts_at,
            ends_at=due.ends_at,
            summary=f"Appointment with {due.business}",
            description=f"Reference {due.reference}",
            organizer=parseaddr(settings.email_from or "")[1],
            attendee=due.to_address,
        )

    def _record(self, uow: AbstractUnitOfWork, due: DueMessage, outcome: Outcome, now) -> None:
        if outcome.status == "sending":
            # Perhaps sent: left in doubt (attempted_at stands), resolved by asking the provider.
            uow.notifications.recheck_later(due.id, utc_now(), outcome.error or "in doubt")
            return
        if outcome.status == "pending":
            uow.notifications.finish(
                due.id,
                "pending",
                error=outcome.error,
                retry_at=now + RETRY_DELAY * (due.attempts + 1),
            )
            return
        uow.notifications.finish(
            due.id,
            outcome.status,
            provider_id=outcome.provider_id,
            error=outcome.error,
            sent_at=now if outcome.status == "sent" else None,
        )
        if outcome.status == "opted_out":
            uow.notifications.opt_out(due.org_id, due.to_address, "Twilio error 21610")

    # --- in doubt --------------------------------------------------------------------------

    def _resolve_one(self) -> bool:
        with self._uow() as uow:
            due = uow.notifications.claim_in_doubt(utc_now() - self._in_doubt_after)
            if due is None:
                return False
            if due.channel == caller_messages.EMAIL:
                uow.notifications.finish(
                    due.id,
                    "failed",
                    error="in doubt after a crash: the mail server may have it; not sent again",
                )
                uow.commit()
                return True
            settings = uow.notifications.settings(due.org_id)
            try:
                if settings is None:
                    raise SecretsUnavailable("no SMS settings any more")
                since = (due.attempted_at or utc_now()) - timedelta(minutes=1)
                sid = self._channels[due.channel].find_sent(
                    self._sms_sender(settings, uow.secrets),
                    OutgoingMessage(to=due.to_address, body=self._body(due)),
                    since,
                    uow.notifications.provider_ids(due.org_id, due.to_address),
                    timeout_s=self._timeout_s,
                )
            except Exception:
                # Ask again later rather than guess; this row goes to the back of the line,
                # so one organization's unreachable provider holds up nobody else. After a
                # day it is given up on (never sent blind).
                if utc_now() - due.created_at > GIVE_UP_AFTER:
                    reason = "in doubt, and the provider could not be asked for a day"
                    uow.notifications.finish(due.id, "failed", error=reason)
                else:
                    reason = "in doubt; the provider could not be asked"
                    uow.notifications.recheck_later(due.id, utc_now(), reason)
                uow.commit()
                log.warning("message %s in doubt: the provider could not be asked", due.id)
                return True
            if sid:
                uow.notifications.finish(due.id, "sent", provider_id=sid, sent_at=self._clock())
                log.info("message %s in doubt: the provider has it (%s)", due.id, sid)
            else:
                uow.notifications.finish(
                    due.id, "pending", error="in doubt; the provider had not got it"
                )
                log.info("message %s in doubt: the provider never got it; sending", due.id)
            uow.commit()
        return True
