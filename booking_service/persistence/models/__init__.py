"""ORM models and the constraints the code relies on, one module per aggregate.

Tables are created by alembic revisions, never by create_all. Every unique constraint includes
org_id, and appointments point at contacts through (org_id, contact_id) so the database itself
refuses to attach one organization's appointment to another's contact.

- organizations: the organization and the HMAC signatures it accepted;
- appointments: contacts and their appointments (the double-booking guard);
- ledger: the idempotency ledger of tool calls;
- schedule: resources, weekly hours, dated exceptions and services;
- outbox: events, webhook endpoints, deliveries and attempts;
- messages: messaging settings, notifications, SMS opt-outs and inbound SMS;
- calendars: calendar links, busy times, pushes and ICS feeds;
- users: who signs in to the web page, and the sign-in throttle;
- counters: per-organization counts within a window;
- waitlist: callers waiting for a time, freed times and the offers made of them.
- api: the REST API's keys and its kept answers per Idempotency-Key.
- calls: voice platform settings and the reports of finished calls.

Importing this package registers every table on `Base.metadata` (alembic's env.py relies on
it), and every model and constant is importable from here as before the split.
"""

from __future__ import annotations

from booking_service.persistence.models.api import (
    UQ_API_REQUESTS_KEY_IDEMPOTENCY,
    ApiKey,
    ApiRequest,
)
from booking_service.persistence.models.appointments import (
    APPOINTMENT_STATUSES,
    CK_CONTACTS_PHONE_OR_EMAIL,
    EX_APPOINTMENTS_NO_OVERLAP,
    UQ_APPOINTMENTS_ORG_REFERENCE,
    UQ_CONTACTS_ORG_EMAIL_PHONELESS,
    UQ_CONTACTS_ORG_ID,
    UQ_CONTACTS_ORG_PHONE,
    Appointment,
    Contact,
)
from booking_service.persistence.models.calendars import (
    PROVIDERS,
    WHEN_STALE,
    CalendarBusy,
    CalendarConnectState,
    CalendarFeed,
    CalendarLink,
    CalendarPush,
    CalendarRemoteEvent,
)
from booking_service.persistence.models.calls import (
    UQ_CALL_REPORTS_ORG_PLATFORM_CALL,
    CallReport,
    VoicePlatformSettings,
)
from booking_service.persistence.models.counters import (
    OrgCounter,
)
from booking_service.persistence.models.ledger import (
    UQ_TOOL_CALLS_ORG_TOOL_CALL,
    ToolCall,
)
from booking_service.persistence.models.messages import (
    NOTIFICATION_KINDS,
    NOTIFICATION_STATUSES,
    MessagingSettings,
    Notification,
    SmsInbound,
    SmsOptOut,
)
from booking_service.persistence.models.organizations import (
    UQ_WEBHOOK_SIGNATURES,
    Organization,
    WebhookSignature,
)
from booking_service.persistence.models.outbox import (
    DELIVERY_STATUSES,
    OutboxEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from booking_service.persistence.models.schedule import (
    UQ_RESOURCES_ORG_ID,
    UQ_RESOURCES_ORG_NAME,
    UQ_SERVICES_ORG_NAME,
    Resource,
    ScheduleException,
    Service,
    WorkingHours,
)
from booking_service.persistence.models.users import (
    USER_ROLES,
    SignInThrottle,
    User,
)
from booking_service.persistence.models.waitlist import (
    WAITLIST_STATUSES,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistOpening,
)

__all__ = [
    "APPOINTMENT_STATUSES",
    "CK_CONTACTS_PHONE_OR_EMAIL",
    "DELIVERY_STATUSES",
    "EX_APPOINTMENTS_NO_OVERLAP",
    "NOTIFICATION_KINDS",
    "NOTIFICATION_STATUSES",
    "PROVIDERS",
    "UQ_API_REQUESTS_KEY_IDEMPOTENCY",
    "UQ_APPOINTMENTS_ORG_REFERENCE",
    "UQ_CALL_REPORTS_ORG_PLATFORM_CALL",
    "UQ_CONTACTS_ORG_EMAIL_PHONELESS",
    "UQ_CONTACTS_ORG_ID",
    "UQ_CONTACTS_ORG_PHONE",
    "UQ_RESOURCES_ORG_ID",
    "UQ_RESOURCES_ORG_NAME",
    "UQ_SERVICES_ORG_NAME",
    "UQ_TOOL_CALLS_ORG_TOOL_CALL",
    "UQ_WEBHOOK_SIGNATURES",
    "USER_ROLES",
    "WAITLIST_STATUSES",
    "WHEN_STALE",
    "ApiKey",
    "ApiRequest",
    "Appointment",
    "CalendarBusy",
    "CalendarConnectState",
    "CalendarFeed",
    "CalendarLink",
    "CalendarPush",
    "CalendarRemoteEvent",
    "CallReport",
    "Contact",
    "MessagingSettings",
    "Notification",
    "OrgCounter",
    "Organization",
    "OutboxEvent",
    "Resource",
    "ScheduleException",
    "Service",
    "SignInThrottle",
    "SmsInbound",
    "SmsOptOut",
    "ToolCall",
    "User",
    "VoicePlatformSettings",
    "WaitlistEntry",
    "WaitlistOffer",
    "WaitlistOpening",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookSignature",
    "WorkingHours",
]
