"""The messaging use cases: an organization's SMS and email settings, reminders and quiet
hours, opt-outs and replies from Twilio's inbound webhook, and the owner's list of what was
sent.

Settings are printed as JSON by the CLI, never with a secret: the auth token is sealed
(secrets_box) before it is stored and only the worker opens it.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import datetime, time, timedelta
from email.utils import parseaddr

from booking_service.domain import sms_replies as sms_replies_words
from booking_service.domain.errors import InputError, NotFound
from booking_service.domain.normalize import (
    is_valid_region,
    mask_phone,
    normalize_email,
    normalize_phone,
)
from booking_service.domain.recipients import sms_countries
from booking_service.domain.times import utc_now
from booking_service.persistence.repositories.notifications import NotificationRow, SettingsRow
from booking_service.persistence.repositories.organizations import OrganizationRow
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases.sms_replies import Answered, answer_reply

# Twilio's opt-out and opt-in keywords (Advanced Opt-Out defaults): domain/sms_replies.py.
STOP_WORDS = sms_replies_words.STOP_WORDS
START_WORDS = sms_replies_words.START_WORDS
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
_OFFSET = re.compile(r"^(\d{1,4})\s*([dhm])$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class MessagingInputError(InputError):
    """A messaging setting is malformed; the message says which and how."""


def _org(uow: AbstractUnitOfWork, org_id: int) -> OrganizationRow:
    org = uow.organizations.get(org_id)
    if org is None:
        raise NotFound("organization", org_id)
    return org


def _offset_text(minutes: int) -> str:
    if minutes % 1440 == 0:
        return f"{minutes // 1440 * 24}h" if minutes < 2880 else f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def view(org: OrganizationRow, settings: SettingsRow | None) -> dict:
    """The organization's messaging settings as printed (never a secret)."""
    quiet = (
        f"{org.quiet_from:%H:%M}-{org.quiet_until:%H:%M}"
        if org.quiet_from is not None and org.quiet_until is not None
        else None
    )
    s = settings
    return {
        "id": org.id,
        "sms": {
            "enabled": bool(s and s.sms_enabled),
            "account_sid": s.twilio_account_sid if s else None,
            "auth_token": "set" if s and s.twilio_auth_token else None,
            "from": s.sms_from if s else None,
            "messaging_service_sid": s.messaging_service_sid if s else None,
            "countries": sms_countries(s.sms_countries if s else None, org.phone_region),
        },
        "email": {
            "enabled": bool(s and s.email_enabled),
            "from": s.email_from if s else None,
            "reply_to": s.email_reply_to if s else None,
        },
        "reminders": [_offset_text(m) for m in sorted(org.reminder_minutes, reverse=True)],
        "quiet_hours": quiet,
    }


def show(uow: AbstractUnitOfWork, org_id: int) -> dict:
    """The messaging settings of an organization (NotFound when there is none)."""
    with uow:
        return view(_org(uow, org_id), uow.notifications.settings(org_id))


def configure_sms(
    uow: AbstractUnitOfWork,
    org_id: int,
    *,
    account_sid: str | None = None,
    auth_token: str | None = None,
    sms_from: str | None = None,
    messaging_service_sid: str | None = None,
    countries: str | None = None,
    disable: bool = False,
) -> dict:
    """Turn SMS on with Twilio credentials and a sender, or off (`disable`)."""
    if disable:
        values: dict = {"sms_enabled": False}
    else:
        if not account_sid or not _ACCOUNT_SID.match(account_sid):
            raise MessagingInputError("account_sid", "must be a Twilio account SID (AC + 32 hex)")
        if not auth_token or not auth_token.strip():
            raise MessagingInputError("auth_token", "is required")
        if bool(sms_from) == bool(messaging_service_sid):
            raise MessagingInputError(
                "sms_from", "or else a messaging service SID is needed (one of the two)"
            )
        sender = None
        if sms_from:
            sender = normalize_phone(sms_from, "US")
            if sender is None or not sms_from.strip().startswith("+"):
                raise MessagingInputError("sms_from", "must be a phone number in + form (E.164)")
        if messaging_service_sid and not _SERVICE_SID.match(messaging_service_sid):
            raise MessagingInputError("messaging_service_sid", "must be MG + 32 hex")
        regions = None
        if countries:
            regions = [c.strip().upper() for c in countries.split(",") if c.strip()]
            bad = [c for c in regions if not is_valid_region(c)]
            if bad or not regions:
                raise MessagingInputError(
                    "countries", f"has unknown country codes: {', '.join(bad) or countries}"
                )
        values = {
            "sms_enabled": True,
            "twilio_account_sid": account_sid,
            "twilio_auth_token": uow.secrets.seal(auth_token.strip()),
            "sms_from": sender,
            "messaging_service_sid": messaging_service_sid,
            "sms_countries": regions,
        }
    with uow:
        org = _org(uow, org_id)
        settings = uow.notifications.save_settings(org_id, values)
        uow.commit()
    return view(org, settings)


def configure_email(
    uow: AbstractUnitOfWork,
    org_id: int,
    *,
    sender: str | None = None,
    reply_to: str | None = None,
    disable: bool = False,
) -> dict:
    """Turn email on with a From (and Reply-To), or off (`disable`)."""
    if disable:
        values: dict = {"email_enabled": False}
    else:
        if not sender or normalize_email(parseaddr(sender)[1]) is None:
            raise MessagingInputError(
                "email_from", 'must be an address, e.g. "Clinic <hi@example.com>"'
            )
        if reply_to and normalize_email(reply_to) is None:
            raise MessagingInputError("reply_to", "must be an email address")
        values = {"email_enabled": True, "email_from": sender.strip(), "email_reply_to": reply_to}
    with uow:
        org = _org(uow, org_id)
        settings = uow.notifications.save_settings(org_id, values)
        uow.commit()
    return view(org, settings)


def parse_reminders(text: str) -> list[int]:
    """ "24h,2h" → [1440, 120]; "" → [] (no reminders). Units d, h, m; at most 30 days."""
    minutes = []
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        match = _OFFSET.match(part)
        if not match:
            raise MessagingInputError(
                "reminders", f"has a bad offset {part!r} (use e.g. 24h,2h or 2d,30m)"
            )
        value = int(match.group(1)) * {"d": 1440, "h": 60, "m": 1}[match.group(2)]
        if not 5 <= value <= 30 * 1440:
            raise MessagingInputError("reminders", "must be between 5 minutes and 30 days before")
        minutes.append(value)
    if len(minutes) > 5:
        raise MessagingInputError("reminders", "may be at most 5")
    return sorted(set(minutes), reverse=True)


def parse_quiet_hours(text: str) -> tuple[time, time] | None:
    """ "21:00-08:00" → (21:00, 08:00); "" → None (no quiet hours)."""
    if not text.strip():
        return None
    start, _, end = text.strip().partition("-")
    clocks = [_CLOCK.match(x.strip()) for x in (start, end)]
    if not all(clocks) or start.strip() == end.strip():
        raise MessagingInputError("quiet_hours", "look like 21:00-08:00")
    first, second = (time(int(m.group(1)), int(m.group(2))) for m in clocks if m)
    return first, second


def reminder_values(reminders: str | None, quiet_hours: str | None) -> dict[str, object]:
    """The organization columns `org update --reminders/--quiet-hours` change."""
    values: dict[str, object] = {}
    if reminders is not None:
        values["reminder_minutes"] = parse_reminders(reminders)
    if quiet_hours is not None:
        quiet = parse_quiet_hours(quiet_hours)
        values["quiet_from"], values["quiet_until"] = quiet if quiet else (None, None)
    return values


# How long a handled inbound message's sid is remembered. Twilio's signature carries no time,
# so a captured STOP or START replayed after its sid is forgotten is acted on again: keep them
# long. Recorded: STOP/START words, and replies from numbers that have appointments (#29).
INBOUND_SID_RETENTION = timedelta(days=400)


def inbound_sms(
    uow: AbstractUnitOfWork, org_id: int, sender: str, body: str, message_sid: str
) -> Answered:
    """Act on an SMS a number sent to the organization: an opt-out keyword (STOP, ...) or
    opt-in (START, UNSTOP) changes "opted_out"/"opted_in"; HELP and INFO are Twilio's to
    answer; anything else is a reply to our texts (use_cases/sms_replies.py: 1 confirms, 2
    cancels, YES takes a waitlist offer). `change` "already_handled": this MessageSid was acted
    on before (a retry or a replay changes nothing and gets the same answer)."""
    word = sms_replies_words.keyword(body)
    phone = normalize_phone(sender, "US")
    if phone is None or word in sms_replies_words.HELP_WORDS:
        return Answered(None, None)
    if word not in STOP_WORDS | START_WORDS:
        return answer_reply(uow, org_id, phone, body, message_sid, utc_now())
    with uow:
        # In the same transaction as the change: the sid is recorded if and only if the
        # change is, so a replayed STOP cannot undo a later START.
        if not uow.notifications.remember_inbound(org_id, message_sid):
            return Answered("already_handled", None)
        if word in STOP_WORDS:
            uow.notifications.opt_out(org_id, phone, f"replied {word}")
        else:
            uow.notifications.opt_in(org_id, phone)
        uow.commit()
    # Empty answer: Twilio's own opt-out handling sends the text carriers require.
    return Answered("opted_out" if word in STOP_WORDS else "opted_in", None)


def forget_old_inbound(uow: AbstractUnitOfWork, before: datetime) -> int:
    """Forget the sids of inbound messages received before `before` (the worker calls it with
    now - INBOUND_SID_RETENTION); returns how many were dropped."""
    with uow:
        dropped = uow.notifications.forget_inbound(before)
        uow.commit()
    return dropped


def twilio_auth_token(uow: AbstractUnitOfWork, org_id: int) -> str | None:
    """The organization's Twilio auth token (to check X-Twilio-Signature), or None."""
    with uow:
        settings = uow.notifications.settings(org_id)
    if settings is None or not settings.twilio_auth_token:
        return None
    return uow.secrets.open(settings.twilio_auth_token)


def listing(uow: AbstractUnitOfWork, org_id: int, reference: str | None) -> list[dict]:
    """What was and will be sent, for the owner (phones masked to their last 4 digits)."""
    with uow:
        _org(uow, org_id)
        rows = uow.notifications.listing(org_id, reference.upper() if reference else None)
    return [_listed(r) for r in rows]


def _listed(row: NotificationRow) -> dict:
    data = asdict(row)
    data["to"] = mask_phone(row.to_address) if row.channel == "sms" else _mask_email(row.to_address)
    del data["to_address"], data["id"]
    for key in ("due_at", "sent_at"):
        data[key] = data[key].isoformat() if data[key] else None
    return data


def _mask_email(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"
