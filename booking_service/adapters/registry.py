"""Today's adapter for each port, as the front ends wire them into the use cases: a new
calendar provider or message channel is one more entry here."""

from __future__ import annotations

from booking_service.adapters.caldav_provider import CalDavProvider
from booking_service.adapters.email import SmtpEmail
from booking_service.adapters.sms import TwilioSms
from booking_service.adapters.webhooks import StandardWebhookSender
from booking_service.ports.calendars import CalendarProvider
from booking_service.ports.messages import MessageChannel
from booking_service.ports.webhooks import WebhookSender


def calendar_providers() -> dict[str, CalendarProvider]:
    """Calendar providers by the name a link stores."""
    return {"caldav": CalDavProvider()}


def message_channels() -> dict[str, MessageChannel]:
    """Message channels by the name a message row stores."""
    return {"sms": TwilioSms(), "email": SmtpEmail()}


def webhook_sender() -> WebhookSender:
    """The sender of signed webhooks."""
    return StandardWebhookSender()
