"""Connecting a resource's Google or Microsoft 365 calendar by OAuth 2.0 (authorization code
with PKCE, offline access), and linking a secret iCal address.

`start_connect` stores a random `state` (only its hash), the sealed PKCE verifier, the
resource and the link's options (and, from the web page, who asked) for 15 minutes and returns
the provider's consent URL. `finish_connect` takes that state exactly once (a replayed,
expired or foreign one links nothing), trades the code for a refresh token, checks the
calendar can be read, and links it: a resource already linked to that calendar gets the new
grant (a reconnection) instead of a second link.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import timedelta

from booking_service.adapters import oauth
from booking_service.adapters.ics_download import masked, normalized
from booking_service.adapters.webhooks import UnsafeTarget, check_target
from booking_service.domain.errors import NotFound
from booking_service.domain.times import utc_now
from booking_service.persistence.models import WHEN_STALE
from booking_service.persistence.repositories.calendars import LinkRow
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.ports.calendars import CalendarAccess, CalendarFailure, CalendarProvider
from booking_service.use_cases.calendar_links import CalendarInputError

CONNECT_TTL = timedelta(minutes=15)
OAUTH_PROVIDERS = ("google", "microsoft")
LABELS = {"google": "Google Calendar", "microsoft": "Microsoft 365"}
# What an operator sets to offer each provider (README, "Google Calendar and Microsoft 365").
VARIABLES = {
    "google": ("GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_SECRET", "PUBLIC_BASE_URL"),
    "microsoft": ("MICROSOFT_CLIENT_ID", "MICROSOFT_CLIENT_SECRET", "PUBLIC_BASE_URL"),
}


class ConnectRefused(Exception):
    """A callback that links nothing; the message is fit for the owner's error page (no
    tokens, no provider bodies)."""


def callback_url(base_url: str, provider: str) -> str:
    """Where the provider sends the owner back (registered in its console)."""
    return f"{base_url.rstrip('/')}/oauth/{provider}/callback"


def offered(clients: Mapping[str, oauth.OAuthClient]) -> list[str]:
    """The OAuth providers this installation is registered with."""
    return [name for name in OAUTH_PROVIDERS if clients[name].configured]


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _options(
    push: bool, block: bool, max_staleness_minutes: int, when_stale: str
) -> dict[str, object]:
    if not (push or block):
        raise CalendarInputError("a link that neither pushes nor blocks does nothing")
    if when_stale not in WHEN_STALE:
        raise CalendarInputError("when_stale", "must be refuse or book", allowed=WHEN_STALE)
    if not 1 <= max_staleness_minutes <= 10080:
        raise CalendarInputError("max_staleness_minutes", "must be between 1 and 10080 (a week)")
    return {
        "push": push,
        "block": block,
        "max_staleness_minutes": max_staleness_minutes,
        "when_stale": when_stale,
    }


def start_connect(
    uow: AbstractUnitOfWork,
    clients: Mapping[str, oauth.OAuthClient],
    base_url: str,
    resource_id: int,
    provider: str,
    *,
    calendar_id: str | None = None,
    push: bool = True,
    block: bool = True,
    max_staleness_minutes: int = 15,
    when_stale: str = "refuse",
    org_id: int | None = None,
    user_id: int | None = None,
) -> str:
    """The consent URL that links `resource_id` to its owner's calendar at `provider` once
    someone opens it and agrees (within 15 minutes, once). From the web page, `org_id` and
    `user_id` bind it to the signed-in owner. NotFound for a resource not in `org_id`;
    CalendarInputError naming the variables to set when the provider is not configured."""
    if provider not in OAUTH_PROVIDERS:
        raise CalendarInputError("provider", "must be google or microsoft", allowed=OAUTH_PROVIDERS)
    if not clients[provider].configured:
        raise CalendarInputError(
            "provider",
            f"is not set up on this server: set {', '.join(VARIABLES[provider])} "
            "(README: Google Calendar and Microsoft 365)",
        )
    options = _options(push, block, max_staleness_minutes, when_stale)
    calendar_id = (calendar_id or "").strip() or None
    if calendar_id is not None and len(calendar_id) > 500:
        raise CalendarInputError("calendar_id", "is longer than 500 characters")
    options["calendar_id"] = calendar_id
    state, verifier = oauth.new_state(), oauth.new_verifier()
    now = utc_now()
    with uow:
        resource = uow.schedule.resource(resource_id)
        if resource is None or (org_id is not None and resource.org_id != org_id):
            raise NotFound("resource", resource_id)
        uow.calendars.forget_connect_states(now)
        uow.calendars.add_connect_state(
            org_id=resource.org_id,
            resource_id=resource.id,
            provider=provider,
            state_hash=_hash(state),
            code_verifier=uow.secrets.seal(verifier),
            options=options,
            user_id=user_id,
            expires_at=now + CONNECT_TTL,
        )
        uow.commit()
    return oauth.authorize_url(clients[provider], callback_url(base_url, provider), state, verifier)


def finish_connect(
    uow: AbstractUnitOfWork,
    clients: Mapping[str, oauth.OAuthClient],
    providers: Mapping[str, CalendarProvider],
    base_url: str,
    provider: str,
    *,
    state: str,
    code: str | None,
    error: str | None,
    timeout_s: int,
    user_id: int | None = None,
) -> LinkRow:
    """Complete a connection from the provider's callback. Raises ConnectRefused for an
    unknown, used, expired or foreign state, a refused consent, or a calendar that cannot be
    read; the state is used up either way."""
    now = utc_now()
    if provider not in OAUTH_PROVIDERS or not state or len(state) > 200:
        raise ConnectRefused("This connection link is not valid. Start again from Settings.")
    with uow:
        found = uow.calendars.take_connect_state(_hash(state), now)
        verifier = uow.secrets.open(found.code_verifier) if found is not None else ""
        uow.commit()  # used: a replay finds nothing
    if found is None or found.provider != provider:
        raise ConnectRefused(
            "This connection link has expired or was already used. Start again from Settings."
        )
    if found.user_id is not None and found.user_id != user_id:
        raise ConnectRefused(
            "This connection was started by another user: sign in as that user, or start again."
        )
    if error or not code:
        raise ConnectRefused(
            f"{LABELS[provider]} did not give access ({error or 'no code'}); nothing was linked."
        )
    try:
        grant = oauth.exchange_code(
            clients[provider], code, callback_url(base_url, provider), verifier, timeout_s
        )
    except CalendarFailure as exc:
        raise ConnectRefused(f"{LABELS[provider]} refused the connection: {exc}") from None
    options = found.options
    calendar_id = options.get("calendar_id")
    access = CalendarAccess(
        url=provider,
        username=grant.email,
        password=grant.refresh_token,
        timeout_s=timeout_s,
        allow_private=False,
        calendar_id=calendar_id,
    )
    try:
        providers[provider].check(access)
    except CalendarFailure as exc:
        raise ConnectRefused(f"The calendar could not be read: {exc}") from None
    refresh = access.renewed[-1] if access.renewed else grant.refresh_token
    with uow:
        resource = uow.schedule.resource(found.resource_id)
        if resource is None:
            raise ConnectRefused("That resource was removed meanwhile; nothing was linked.")
        existing = uow.calendars.link_of(found.org_id, found.resource_id, provider, calendar_id)
        values = {
            "username": None,
            "account": grant.email,
            "password": uow.secrets.seal(refresh),
            "push": bool(options["push"]),
            "block": bool(options["block"]),
            "max_staleness_minutes": int(options["max_staleness_minutes"]),
            "when_stale": str(options["when_stale"]),
        }
        if values["push"] and any(
            other.push
            and other.provider == provider
            and other.account == grant.email
            and other.calendar_id == calendar_id
            and (existing is None or other.id != existing.id)
            for other in uow.calendars.links(found.org_id)
        ):
            raise ConnectRefused(
                "Another resource already puts its bookings into that calendar: choose another "
                "calendar, or link this one without pushing."
            )
        if existing is not None:
            uow.calendars.update_link(
                existing.id,
                **values,
                reconnect_needed=False,
                last_error=None,
                last_error_at=None,
                consecutive_failures=0,
                next_poll_at=None,
                last_poll_at=None,
                # Perhaps another account now: its first read is a full one.
                sync_state=None,
            )
            link = uow.calendars.link(existing.id)
            assert link is not None
        else:
            link = uow.calendars.add_link(
                org_id=found.org_id,
                resource_id=found.resource_id,
                provider=provider,
                calendar_id=calendar_id,
                url=f"{provider}:{calendar_id or 'primary'}",
                **values,
            )
        if link.push:
            uow.calendars.push_upcoming(link, now)
        uow.commit()
    return link


def link_ics(
    uow: AbstractUnitOfWork,
    resource_id: int,
    url: str,
    *,
    max_staleness_minutes: int = 15,
    when_stale: str = "refuse",
    allow_private: bool = False,
    check: CalendarProvider | None = None,
    timeout_s: int = 10,
) -> LinkRow:
    """Link a secret iCal address as a busy source of a resource (read only): the address is
    sealed and shown masked. `check` (the ics provider) reads it once before anything is
    stored. NotFound without such resource."""
    _options(False, True, max_staleness_minutes, when_stale)
    address = normalized(url)
    if len(address) > 2000:
        raise CalendarInputError("ics_url", "is longer than 2000 characters")
    if not address.lower().startswith(("https://", "http://")):
        raise CalendarInputError("ics_url", "must start with https://, http:// or webcal://")
    try:
        check_target(address, allow_private=allow_private)
    except UnsafeTarget as exc:
        raise CalendarInputError("ics_url", str(exc)) from None
    with uow:
        resource = uow.schedule.resource(resource_id)
        if resource is None:
            raise NotFound("resource", resource_id)
    if check is not None:
        access = CalendarAccess(
            url=masked(address),
            username=None,
            password=address,
            timeout_s=timeout_s,
            allow_private=allow_private,
        )
        try:
            check.check(access)
        except CalendarFailure as exc:
            raise CalendarInputError("ics_url", f"cannot be read: {exc}") from None
    with uow:
        if uow.schedule.resource(resource_id) is None:
            raise NotFound("resource", resource_id)
        link = uow.calendars.add_link(
            org_id=resource.org_id,
            resource_id=resource.id,
            provider="ics",
            url=masked(address),
            password=uow.secrets.seal(address),
            push=False,
            block=True,
            max_staleness_minutes=max_staleness_minutes,
            when_stale=when_stale,
        )
        uow.commit()
    return link
