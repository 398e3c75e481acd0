"""Today's adapter for each port, as the front ends wire them into the use cases: a new
calendar provider or message channel is one more entry here."""

from __future__ import annotations

from booking_service.adapters.caldav_provider import CalDavProvider
from booking_service.adapters.email import SmtpEmail
from booking_service.adapters.google_calendar import GoogleCalendar, google_client
from booking_service.adapters.ics_feed import IcsFeed
from booking_service.adapters.microsoft_calendar import MicrosoftCalendar, microsoft_client
from booking_service.adapters.oauth import OAuthClient
from booking_service.adapters.sms import TwilioSms
from booking_service.adapters.webhooks import StandardWebhookSender
from booking_service.config import Settings
from booking_service.ports.calendars import CalendarProvider
from booking_service.ports.messages import MessageChannel
from booking_service.ports.webhooks import WebhookSender


def oauth_clients(settings: Settings) -> dict[str, OAuthClient]:
    """The OAuth registrations by provider name (a client without an id is not offered)."""
    return {
        "google": google_client(
            settings.google_client_id,
            settings.google_client_secret,
            settings.google_auth_url,
            settings.google_token_url,
        ),
        "microsoft": microsoft_client(
            settings.microsoft_client_id,
            settings.microsoft_client_secret,
            settings.microsoft_authority_url,
        ),
    }


def calendar_providers(settings: Settings | None = None) -> dict[str, CalendarProvider]:
    """Calendar providers by the name a link stores (OAuth ones from `settings`; defaults
    without them)."""
    settings = settings or Settings()
    clients = oauth_clients(settings)
    return {
        "caldav": CalDavProvider(),
        "google": GoogleCalendar(clients["google"], settings.google_calendar_api_url),
        "microsoft": MicrosoftCalendar(clients["microsoft"], settings.microsoft_graph_url),
        "ics": IcsFeed(),
    }


def message_channels() -> dict[str, MessageChannel]:
    """Message channels by the name a message row stores."""
    return {"sms": TwilioSms(), "email": SmtpEmail()}


def webhook_sender() -> WebhookSender:
    """The sender of signed webhooks."""
    return StandardWebhookSender()
