"""The outbox worker (`flask --app wsgi worker`): delivers due webhooks, retries, records;
sends the due confirmations and reminders (notifier.py); and keeps linked calendars in step
(calendar_sync.py).

One tenant must not stall what all share (#24). Each kind of work has threads of its own, so
none waits for another: WEBHOOK_CONCURRENCY webhook senders, one message sender, and
CALENDAR_CONCURRENCY calendar threads. Webhooks and calendars are fair between organizations:
an organization with an exchange in flight here gets no second one until it ends, and the
organizations served most recently go to the back of the line (round-robin). An endpoint that
fails CIRCUIT_THRESHOLD times in a row is not tried for a while (its circuit is open: 30 s,
doubling, at most an hour), so a dead receiver stops taking a slot at all. So another
organization's slow or hostile endpoints delay ours by at most one exchange's timeout, and
only when every slot is taken.

One delivery per transaction: the worker claims the oldest due delivery with FOR UPDATE SKIP
LOCKED, sends it while holding the row lock, records the attempt and commits. Several workers,
on one machine or many, share the work; a worker that dies mid-attempt releases its lock with
its connection and the delivery is sent again, with the same webhook-id.

Retries follow the Standard Webhooks schedule (immediately, then 5 s, 5 min, 30 min, 2 h, 5 h,
10 h, 14 h, 20 h and 24 h after the previous attempt, each with ±10 % jitter), waiting longer
when the receiver says so in Retry-After. Only 2xx is success; 410 disables the endpoint; any
other answer, a timeout or a connection error is retried until the last attempt, after which
the delivery is failed and stays replayable. Time comes from an injected clock, so tests can
run a day of retries in a second.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from booking_service.adapters.webhooks import Sent, send
from booking_service.config import Settings
from booking_service.domain.errors import DatabaseUnavailable
from booking_service.domain.times import utc_now
from booking_service.persistence.repositories.outbox import DueDelivery
from booking_service.persistence.secrets_box import SecretBox, SecretsUnavailable
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases.accounts import FAILURE_WINDOW
from booking_service.use_cases.notifications import INBOUND_SID_RETENTION, forget_old_inbound
from booking_service.use_cases.webhooks import signing_secrets
from booking_service.worker.calendar_sync import CalendarSync
from booking_service.worker.notifier import Notifier

log = logging.getLogger(__name__)

# The delay before each retry; len + 1 attempts in all.
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# A receiver cannot push the next attempt further out than the longest step of the schedule.
MAX_RETRY_AFTER = timedelta(hours=24)
# The circuit breaker of an endpoint: open after this many failed attempts in a row, first for
# CIRCUIT_BASE, doubling with each further failure, at most CIRCUIT_LONGEST.
CIRCUIT_THRESHOLD = 5
CIRCUIT_BASE = timedelta(seconds=30)
CIRCUIT_LONGEST = timedelta(hours=1)
# How many recently served organizations go to the back of the line.
RECENT_ORGS = 16


@dataclass(frozen=True)
class Verdict:
    """What an attempt means: delivered, retry (at `next_attempt_at`), failed or disabled."""

    outcome: str
    next_attempt_at: datetime | None = None


def judge(sent: Sent, attempt: int, now: datetime, jitter: Callable[[], float]) -> Verdict:
    """Classify attempt number `attempt` (1-based) and schedule the next one if any."""
    if sent.status_code is not None and 200 <= sent.status_code < 300:
        return Verdict("delivered")
    if sent.status_code == 410:
        return Verdict("disabled")
    if attempt >= MAX_ATTEMPTS:
        return Verdict("failed")
    delay = RETRY_DELAYS[attempt - 1] * jitter()
    if sent.retry_after_s is not None:
        asked = min(sent.retry_after_s, MAX_RETRY_AFTER.total_seconds())
        delay = max(delay, timedelta(seconds=asked))
    return Verdict("retry", now + delay)


def _jitter() -> float:
    return random.uniform(0.9, 1.1)  # noqa: S311 - spreading retries, not a secret


class Worker:
    """Delivers what is due. `clock` decides what is due and when to retry (tests move it)."""

    def __init__(
        self,
        uow_factory: Callable[[], AbstractUnitOfWork],
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utc_now,
        jitter: Callable[[], float] = _jitter,
    ):
        self._uow = uow_factory
        self._settings = settings
        self._clock = clock
        self._jitter = jitter
        self._stop = threading.Event()
        self._forgot_sign_ins_at = -math.inf
        self._forgot_inbound_at = -math.inf
        self.notifier = Notifier(uow_factory, settings, clock=clock)
        self.calendars = CalendarSync(uow_factory, settings, clock=clock, jitter=jitter)
        # Fairness between organizations among this process's webhook threads.
        self._lock = threading.Lock()
        self._sending: set[int] = set()
        self._recent: deque[int] = deque(maxlen=RECENT_ORGS)

    def stop(self) -> None:
        """Finish the attempt in hand, then return from `run`."""
        self._stop.set()

    def deliver_due(self, *, calendars: bool = True) -> int:
        """Deliver every webhook, message and (`calendars`) calendar push due now, and read the
        calendars due a poll, one transaction each; returns how many attempts."""
        attempts = 0
        while not self._stop.is_set() and self._deliver_one():
            attempts += 1
        attempts += self.notifier.send_due(self._stop.is_set)
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
        threads.append(
            threading.Thread(
                target=self.calendars.run_pool,
                args=(
                    self._settings.calendar_concurrency,
                    self._stop.is_set,
                    self._settings.worker_poll_s,
                ),
                name="calendar-sync",
            )
        )
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
        while not self._stop.is_set() and self._deliver_one(fair=True):
            sent += 1
        return sent

    def _message_round(self) -> int:
        return self.notifier.send_due(self._stop.is_set)

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
        with self._uow() as uow:
            uow.organizations.forget_signatures(self._clock() - 2 * window)
            uow.commit()

    def forget_old_sign_in_failures(self) -> None:
        """Drop the web page's sign-in counters whose window and lock have both ended: any
        email typed into the form makes one, so they must not pile up. At most once a minute."""
        now = time.monotonic()
        if now - self._forgot_sign_ins_at < 60:
            return
        self._forgot_sign_ins_at = now
        with self._uow() as uow:
            uow.users.forget_throttles(self._clock() - FAILURE_WINDOW)
            uow.commit()

    def _deliver_one(self, *, fair: bool = False) -> bool:
        with self._uow() as uow:
            with self._lock:
                busy, recent = (sorted(self._sending), list(self._recent)) if fair else ([], [])
            due = uow.outbox.claim_due(self._clock(), busy=busy, recent=recent)
            if due is None:
                return False
            with self._lock:
                if fair and due.org_id in self._sending:
                    return False  # another thread took this organization meanwhile
                self._sending.add(due.org_id)
                self._recent.append(due.org_id)
            try:
                sent = self._send(due, uow.secrets)
            finally:
                with self._lock:
                    self._sending.discard(due.org_id)
            attempt = due.attempts + 1
            verdict = judge(sent, attempt, self._clock(), self._jitter)
            failures = uow.outbox.endpoint_answered(
                due.endpoint_id,
                ok=verdict.outcome == "delivered",
                now=self._clock(),
                threshold=CIRCUIT_THRESHOLD,
                base=CIRCUIT_BASE,
                longest=CIRCUIT_LONGEST,
            )
            if failures == CIRCUIT_THRESHOLD:
                log.warning(
                    "webhook endpoint %s failed %d times in a row: not tried for a while",
                    due.endpoint_id,
                    failures,
                )
            if verdict.outcome == "disabled":
                uow.outbox.update_endpoint(
                    due.endpoint_id,
                    disabled_at=utc_now(),
                    disabled_reason="the receiver answered 410 Gone",
                )
            uow.outbox.record_attempt(
                due.org_id,
                due.id,
                attempted_at=utc_now(),
                status_code=sent.status_code,
                latency_ms=sent.latency_ms,
                error=sent.error,
                outcome=verdict.outcome,
                next_attempt_at=verdict.next_attempt_at,
            )
            uow.commit()
        log.info(
            "webhook attempt: event=%s endpoint=%s attempt=%d status=%s outcome=%s",
            due.event_id,
            due.endpoint_id,
            attempt,
            sent.status_code,
            verdict.outcome,
        )
        return True

    def _send(self, due: DueDelivery, box: SecretBox) -> Sent:
        body = json.dumps(due.payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        try:
            current = box.open_or_plain(due.secret)
            previous = box.open_or_plain(due.previous_secret) if due.previous_secret else None
        except SecretsUnavailable as exc:
            # Recorded as a failed attempt (and retried): fixing SECRET_KEY lets it through.
            return Sent(status_code=None, latency_ms=0, error=str(exc))
        return send(
            due.url,
            event_id=due.event_id,
            body=body,
            secrets=signing_secrets(current, previous, due.previous_secret_expires_at),
            timeout_s=self._settings.webhook_timeout_s,
            allow_private=self._settings.webhook_allow_private_targets,
        )
