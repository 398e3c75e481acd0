"""Webhook endpoints of an organization, what was delivered to them, and replays."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from booking_service.adapters.webhooks import UnsafeTarget, check_target
from booking_service.domain.errors import InputError, NotFound
from booking_service.domain.outbox import EVENT_TYPES
from booking_service.domain.times import utc_now
from booking_service.persistence.repositories.outbox import AttemptRow, EndpointRow
from booking_service.persistence.unit_of_work import AbstractUnitOfWork

# An organization's endpoints at most: every event is sent to each, and each is a target a
# misused account could point at others (README: Events out).
MAX_ENDPOINTS_PER_ORG = 10
# "Send again" (page or CLI) at most this often per organization and minute: each one is a
# POST to the receiver, and 48 presses in 0.4 s were all taken (#24).
REPLAYS_PER_MINUTE = 10
REPLAY_ACTION = "webhook_replay"  # its org_counters action


class WebhookInputError(InputError):
    """An endpoint setting the operator gave is not usable; the message says why."""


class ReplayLimitReached(WebhookInputError):
    """The organization sent events again `limit` times this minute already."""

    def __init__(self, limit: int):
        super().__init__(
            f"at most {limit} events can be sent again per minute; try again in a minute"
        )
        self.limit = limit


@dataclass(frozen=True)
class Replayed:
    """What a replay did: the endpoints the event was queued for again, and those that still
    had it pending (queued and not sent yet), left as they were."""

    queued: list[int]
    already_queued: list[int]


@dataclass(frozen=True)
class CreatedEndpoint:
    """A new endpoint and its signing secret (shown once)."""

    endpoint: EndpointRow
    secret: str


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def without_credentials(url: str) -> str:
    """The URL as it may be shown or logged: `user:password@` becomes `***@`.

    Endpoints added before credentials in URLs were refused (#24) still carry them. They are
    still delivered to (httpx sends them as Basic auth, and the receiver may depend on it;
    refusing would silently stop its events), but are never printed, listed or shown."""
    parts = urlsplit(url)
    _userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url
    return parts._replace(netloc="***@" + host).geturl()


def _shown(endpoint: EndpointRow) -> EndpointRow:
    """An endpoint as front ends get it: its URL without credentials."""
    shown = without_credentials(endpoint.url)
    return endpoint if shown == endpoint.url else replace(endpoint, url=shown)


def _events(requested: tuple[str, ...]) -> list[str] | None:
    unknown = sorted(set(requested) - set(EVENT_TYPES))
    if unknown:
        raise WebhookInputError(
            f"unknown event type {unknown[0]!r} (expected one of {', '.join(EVENT_TYPES)})"
        )
    return sorted(set(requested)) or None  # none named: all events


def add_endpoint(
    uow: AbstractUnitOfWork,
    org_id: int,
    url: str,
    events: tuple[str, ...] = (),
    *,
    allow_private: bool = False,
) -> CreatedEndpoint:
    """Register where an organization's events go; NotFound without such organization."""
    url = url.strip()
    if len(url) > 2000:
        raise WebhookInputError("the URL is longer than 2000 characters")
    if "@" in urlsplit(url).netloc:
        # The URL is printed, listed, shown on the owner's page and stored as it is; a
        # receiver proves a delivery is ours with webhook-signature, not with a password.
        raise WebhookInputError(
            "put no credentials in the URL (user:password@): the receiver checks the "
            "webhook-signature header instead"
        )
    try:
        check_target(url, allow_private=allow_private)
    except UnsafeTarget as exc:
        raise WebhookInputError(str(exc)) from None
    wanted = _events(events)
    secret = new_secret()
    with uow:
        if uow.organizations.get(org_id) is None:
            raise NotFound("organization", org_id)
        if uow.outbox.endpoint_count(org_id) >= MAX_ENDPOINTS_PER_ORG:
            raise WebhookInputError(
                f"an organization has at most {MAX_ENDPOINTS_PER_ORG} webhook endpoints; "
                "remove or reuse one"
            )
        endpoint = uow.outbox.add_endpoint(org_id, url, wanted, uow.secrets.seal(secret))
        uow.commit()
    return CreatedEndpoint(endpoint, secret)


def list_endpoints(uow: AbstractUnitOfWork, org_id: int) -> list[EndpointRow]:
    """The organization's endpoints, oldest first (URLs without credentials)."""
    with uow:
        return [_shown(e) for e in uow.outbox.endpoints(org_id)]


def set_enabled(uow: AbstractUnitOfWork, endpoint_id: int, *, enabled: bool) -> EndpointRow:
    """Stop sending to an endpoint (its deliveries wait) or start again."""
    values: dict = (
        {"disabled_at": None, "disabled_reason": None}
        if enabled
        else {"disabled_at": utc_now(), "disabled_reason": "disabled by the operator"}
    )
    with uow:
        endpoint = uow.outbox.update_endpoint(endpoint_id, **values)
        if endpoint is None:
            raise NotFound("endpoint", endpoint_id)
        uow.commit()
    return _shown(endpoint)


def rotate_secret(
    uow: AbstractUnitOfWork, endpoint_id: int, *, grace_minutes: int = 0
) -> CreatedEndpoint:
    """A new signing secret; with a grace period the old one keeps signing too until then."""
    if not 0 <= grace_minutes <= 60 * 24 * 30:
        raise WebhookInputError("grace_minutes", "must be between 0 minutes and 30 days")
    secret = new_secret()
    with uow:
        current = uow.outbox.endpoint(endpoint_id)
        if current is None:
            raise NotFound("endpoint", endpoint_id)
        values: dict = {
            "secret": uow.secrets.seal(secret),
            "previous_secret": None,
            "previous_secret_expires_at": None,
        }
        if grace_minutes:
            values["previous_secret"] = current.secret
            values["previous_secret_expires_at"] = utc_now() + timedelta(minutes=grace_minutes)
        endpoint = uow.outbox.update_endpoint(endpoint_id, **values)
        assert endpoint is not None
        uow.commit()
    return CreatedEndpoint(_shown(endpoint), secret)


def signing_secrets(
    endpoint_secret: str, previous: str | None, expires: datetime | None
) -> list[str]:
    """The secrets that sign now: the current one, and the previous one during its grace."""
    valid = [endpoint_secret]
    if previous and expires is not None and expires > utc_now():
        valid.append(previous)
    return valid


def _endpoint_of(uow: AbstractUnitOfWork, endpoint_id: int, org_id: int | None) -> EndpointRow:
    endpoint = uow.outbox.endpoint(endpoint_id)
    if endpoint is None or (org_id is not None and endpoint.org_id != org_id):
        raise NotFound("endpoint", endpoint_id)
    return endpoint


def deliveries(
    uow: AbstractUnitOfWork,
    endpoint_id: int,
    *,
    failed_only: bool = False,
    limit: int = 200,
    org_id: int | None = None,
) -> list[AttemptRow]:
    """Every attempt at an endpoint, newest first; NotFound without such endpoint (or, with
    `org_id`, one of another organization)."""
    with uow:
        _endpoint_of(uow, endpoint_id, org_id)
        return uow.outbox.attempts(endpoint_id, failed_only=failed_only, limit=limit)


def replay(
    uow: AbstractUnitOfWork,
    event_id: str,
    endpoint_id: int | None = None,
    *,
    org_id: int | None = None,
    now: datetime | None = None,
) -> Replayed:
    """Deliver an event again (to one endpoint, or to all that want it). Where it is still
    pending it is left as it is (`already_queued`). NotFound when the event (or the endpoint)
    does not exist, or with `org_id` belongs to another organization; ReplayLimitReached past
    REPLAYS_PER_MINUTE replays of the organization in this minute (only replays that queue
    something count)."""
    now = now or utc_now()
    with uow:
        if endpoint_id is not None:
            _endpoint_of(uow, endpoint_id, org_id)
        owner = uow.outbox.event_org(event_id)
        if owner is None or (org_id is not None and owner != org_id):
            raise NotFound("event", event_id)
        # Counted first: the counter's row stays locked until this transaction ends, so one
        # organization's replays go one at a time and parallel presses cannot all slip under
        # the limit. A refused or no-op replay rolls back, its count with it.
        window = now.replace(second=0, microsecond=0)
        if uow.counters.count(owner, REPLAY_ACTION, window) > REPLAYS_PER_MINUTE:
            raise ReplayLimitReached(REPLAYS_PER_MINUTE)
        queued, pending = uow.outbox.replay(event_id, endpoint_id, now)
        if not queued and not pending:
            # Nothing would be sent: say so rather than report a replay that did not happen.
            raise WebhookInputError(
                f"endpoint {endpoint_id} is disabled or belongs to another organization"
                if endpoint_id is not None
                else "no enabled endpoint of the event's organization wants it"
            )
        if queued:
            uow.commit()
    return Replayed(queued, pending)
