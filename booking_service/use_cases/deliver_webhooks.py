"""Delivering one due webhook: claim it, sign and send it, judge the answer, record the
attempt, and keep the endpoint's circuit breaker (the worker runs this on its webhook threads).

One delivery per transaction: the oldest due delivery is claimed with FOR UPDATE SKIP LOCKED
and held while it is sent, then the attempt is recorded and committed. Several workers share
the work; one that dies mid-attempt releases its lock with its connection and the delivery is
sent again, with the same webhook-id.

Retries follow the Standard Webhooks schedule (immediately, then 5 s, 5 min, 30 min, 2 h, 5 h,
10 h, 14 h, 20 h and 24 h after the previous attempt, each with ±10 % jitter), waiting longer
when the receiver says so in Retry-After. Only 2xx is success; 410 disables the endpoint; any
other answer, a timeout or a connection error is retried until the last attempt, after which
the delivery is failed and stays replayable.

Fairness (#24), per process: an organization with a delivery in flight gets no second one
until it ends, and the organizations served most recently go to the back of the line. An
endpoint failing CIRCUIT_THRESHOLD times in a row is not tried for a while (its circuit opens:
CIRCUIT_BASE, doubling, at most CIRCUIT_LONGEST).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from booking_service.config import Settings
from booking_service.domain.times import retry_jitter, utc_now
from booking_service.persistence.repositories.outbox import DueDelivery
from booking_service.persistence.secrets_box import SecretBox, SecretsUnavailable
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.ports.webhooks import Sent, WebhookSender
from booking_service.use_cases.fairness import OrgTurns
from booking_service.use_cases.webhooks import signing_secrets

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
class AttemptVerdict:
    """What an attempt means: delivered, retry (at `next_attempt_at`), failed or disabled."""

    outcome: str
    next_attempt_at: datetime | None = None


def judge(sent: Sent, attempt: int, now: datetime, jitter: Callable[[], float]) -> AttemptVerdict:
    """Classify attempt number `attempt` (1-based) and schedule the next one if any."""
    if sent.status_code is not None and 200 <= sent.status_code < 300:
        return AttemptVerdict("delivered")
    if sent.status_code == 410:
        return AttemptVerdict("disabled")
    if attempt >= MAX_ATTEMPTS:
        return AttemptVerdict("failed")
    delay = RETRY_DELAYS[attempt - 1] * jitter()
    if sent.retry_after_s is not None:
        asked = min(sent.retry_after_s, MAX_RETRY_AFTER.total_seconds())
        delay = max(delay, timedelta(seconds=asked))
    return AttemptVerdict("retry", now + delay)


class WebhookDelivery:
    """Sends due webhooks, one per call. `clock` decides what is due and when to retry."""

    def __init__(
        self,
        uow_factory: Callable[[], AbstractUnitOfWork],
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utc_now,
        jitter: Callable[[], float] = retry_jitter,
        sender: WebhookSender | None = None,
    ):
        if sender is None:
            # The front ends pass their adapter; this default serves tests and the CLI.
            from booking_service.adapters.registry import webhook_sender

            sender = webhook_sender()
        self._sender = sender
        self._uow = uow_factory
        self._settings = settings
        self._clock = clock
        self._jitter = jitter
        self._turns = OrgTurns(remember=RECENT_ORGS)

    def deliver_one(self, *, fair: bool = False) -> bool:
        """Send one due delivery and record the attempt; False when none is due (`fair`: none
        of an organization without a delivery in flight here)."""
        with self._uow() as uow:
            busy, recent = (self._turns.busy(), self._turns.recent()) if fair else ([], [])
            due = uow.outbox.claim_due(self._clock(), busy=busy, recent=recent)
            if due is None:
                return False
            with self._turns.turn(due.org_id) as taken:
                if fair and not taken:
                    return False  # another thread took this organization meanwhile
                sent = self._send(due, uow.secrets)
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
        return self._sender.send(
            due.url,
            event_id=due.event_id,
            body=body,
            secrets=signing_secrets(current, previous, due.previous_secret_expires_at),
            timeout_s=self._settings.webhook_timeout_s,
            allow_private=self._settings.webhook_allow_private_targets,
        )
