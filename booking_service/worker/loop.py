"""The outbox worker (`flask --app wsgi worker`): a loop that calls the delivery use cases,
each on threads of its own, so none waits for another (#24):
- WEBHOOK_CONCURRENCY threads run use_cases/deliver_webhooks.py (fair between organizations,
  a circuit breaker per endpoint);
- one thread runs use_cases/waitlist.py's offers of freed times (#29), then
  use_cases/send_messages.py (confirmations, reminders and those offers);
- CALENDAR_CONCURRENCY threads run use_cases/sync_calendars.py (pushes and reads, one per
  organization at a time);
- the main thread forgets what is kept only to refuse repeats (use_cases/housekeeping.py).
Database outages are waited out; a bug is logged and the loop goes on. Time comes from an
injected clock, so tests can run a day of retries in a second.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from booking_service.adapters.registry import calendar_providers, message_channels, webhook_sender
from booking_service.config import Settings
from booking_service.domain.errors import DatabaseUnavailable
from booking_service.domain.times import retry_jitter, utc_now
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases.accounts import FAILURE_WINDOW
from booking_service.use_cases.api_requests import forget_api_requests
from booking_service.use_cases.deliver_webhooks import WebhookDelivery
from booking_service.use_cases.housekeeping import forget_sign_in_failures, forget_signatures
from booking_service.use_cases.messaging import INBOUND_SID_RETENTION, forget_old_inbound
from booking_service.use_cases.send_messages import Notifier
from booking_service.use_cases.sync_calendars import CalendarSync
from booking_service.use_cases.waitlist import WaitlistOffers

log = logging.getLogger(__name__)


class Worker:
    """Delivers what is due. `clock` decides what is due and when to retry (tests move it)."""

    def __init__(
        self,
        uow_factory: Callable[[], AbstractUnitOfWork],
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utc_now,
        jitter: Callable[[], float] = retry_jitter,
    ):
        self._uow = uow_factory
        self._settings = settings
        self._clock = clock
        self._jitter = jitter
        self._stop = threading.Event()
        self._forgot_sign_ins_at = -math.inf
        self._forgot_inbound_at = -math.inf
        # The composition root: today's adapter for each port (adapters/registry.py).
        self.webhooks = WebhookDelivery(
            uow_factory, settings, clock=clock, jitter=jitter, sender=webhook_sender()
        )
        self.notifier = Notifier(uow_factory, settings, clock=clock, channels=message_channels())
        self.waitlist = WaitlistOffers(uow_factory, clock=clock)
        self.calendars = CalendarSync(
            uow_factory,
            settings,
            clock=clock,
            jitter=jitter,
            providers=calendar_providers(settings),
        )

    def stop(self) -> None:
        """Finish the attempt in hand, then return from `run`."""
        self._stop.set()

    def deliver_due(self, *, calendars: bool = True) -> int:
        """Deliver every webhook, message and (`calendars`) calendar push due now, and read the
        calendars due a poll, one transaction each; returns how many attempts."""
        attempts = 0
        while not self._stop.is_set() and self.webhooks.deliver_one():
            attempts += 1
        attempts += self._message_round()
        if calendars:
            attempts += self.calendars.sync_due(self._stop.is_set)
        return attempts

    def run(self) -> None:
        """Deliver until stopped, each kind of work on threads of its own; database outages
        are waited out."""
        log.info("outbox worker started")
        threads = [
            threading.Thread(target=self._loop, args=(self._webhook_round,), name=f"webhooks-{n}")
            for n in range(self._settings.webhook_concurrency)
        ]
        threads.append(
            threading.Thread(target=self._loop, args=(self._message_round,), name="messages")
        )
        threads += [
            threading.Thread(
                target=self._loop, args=(self.calendars.fair_round,), name=f"calendars-{n}"
            )
            for n in range(self._settings.calendar_concurrency)
        ]
        for thread in threads:
            thread.daemon = True
            thread.start()
        self._loop(self._housekeeping)
        for thread in threads:
            # Each finishes the exchange in hand: at most a webhook or calendar deadline.
            thread.join(
                3 * max(self._settings.calendar_timeout_s, self._settings.webhook_timeout_s)
            )
        log.info("outbox worker stopped")

    def _loop(self, round_: Callable[[], int]) -> None:
        while not self._stop.is_set():
            worked = 0
            try:
                worked = round_()
            except DatabaseUnavailable:
                log.warning("outbox worker: database unavailable; retrying", exc_info=True)
            except Exception:
                # A bug must not stop every organization's deliveries: log it, go on polling.
                log.exception("outbox worker: unexpected error; retrying")
            if not worked:
                self._stop.wait(self._settings.worker_poll_s)

    def _webhook_round(self) -> int:
        sent = 0
        while not self._stop.is_set() and self.webhooks.deliver_one(fair=True):
            sent += 1
        return sent

    def _message_round(self) -> int:
        # Offers first: an offer made now is texted in the same round.
        offered = self.waitlist.offer_round(self._stop.is_set)
        return offered + self.notifier.send_due(self._stop.is_set)

    def _housekeeping(self) -> int:
        self.forget_old_signatures()
        self.forget_old_sign_in_failures()
        self.forget_old_inbound_messages()
        return 0

    def forget_old_inbound_messages(self) -> None:
        """Drop the MessageSids of inbound STOP/START older than their retention, at most once
        an hour (they only guard against a replayed request)."""
        now = time.monotonic()
        if now - self._forgot_inbound_at < 3600:
            return
        self._forgot_inbound_at = now
        forget_old_inbound(self._uow(), self._clock() - INBOUND_SID_RETENTION)

    def forget_old_signatures(self) -> None:
        """Drop the signed requests' kept answers once no repeat can be accepted any more, even
        when no signed request comes to do it on the way."""
        window = timedelta(seconds=self._settings.hmac_window_s)
        forget_signatures(self._uow(), self._clock() - 2 * window)

    def forget_old_sign_in_failures(self) -> None:
        """Drop the web page's sign-in counters whose window and lock have both ended: any
        email typed into the form makes one, so they must not pile up. At most once a minute."""
        now = time.monotonic()
        if now - self._forgot_sign_ins_at < 60:
            return
        self._forgot_sign_ins_at = now
        forget_sign_in_failures(self._uow(), self._clock() - FAILURE_WINDOW)
        # The REST API's answers per Idempotency-Key, past their retention (at least a day).
        forget_api_requests(self._uow(), self._clock())
