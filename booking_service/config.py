"""Settings: the only module that reads os.environ.

Every variable is documented in the README's configuration table; keep the two in step.
Tests pass overrides to `create_app` instead of editing the environment.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(spec: str) -> tuple[Network, ...]:
    """`127.0.0.1,::1,10.0.0.0/8` → networks; ValueError names a bad entry."""
    networks = []
    for entry in (part.strip() for part in spec.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network") from None
    return tuple(networks)


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Typed application settings (environment variable names in the field comments)."""

    database_url: str = ""  # DATABASE_URL
    direct_database_url: str = ""  # DIRECT_DATABASE_URL
    db_pooler: str = "none"  # DB_POOLER: none | transaction
    log_level: str = "INFO"  # LOG_LEVEL
    max_body_bytes: int = 1024 * 1024  # MAX_BODY_BYTES
    db_pool_size: int = 5  # DB_POOL_SIZE
    db_connect_timeout_s: int = 3  # DB_CONNECT_TIMEOUT_S
    db_statement_timeout_ms: int = 5000  # DB_STATEMENT_TIMEOUT_MS
    db_lock_timeout_ms: int = 3000  # DB_LOCK_TIMEOUT_MS
    request_budget_s: int = 12  # REQUEST_BUDGET_S
    request_commit_limit_s: int = 17  # REQUEST_COMMIT_LIMIT_S
    # MAX_CONCURRENT_PER_ORG: per worker process, 0 = no limit. Only a share of a thread count
    # means anything, so deploy/gunicorn.conf.py sets it (threads - 1) unless given.
    max_concurrent_per_org: int = 0
    log_format: str = "text"  # LOG_FORMAT: text | json
    metrics_token: str = ""  # METRICS_TOKEN
    trusted_proxies: str = "127.0.0.1,::1"  # TRUSTED_PROXIES
    max_changes_per_call: int = 6  # MAX_CHANGES_PER_CALL
    schema_check_override: bool = False  # SCHEMA_CHECK_OVERRIDE
    hmac_window_s: int = 300  # HMAC_WINDOW_S
    webhook_timeout_s: int = 10  # WEBHOOK_TIMEOUT_S
    webhook_allow_private_targets: bool = False  # WEBHOOK_ALLOW_PRIVATE_TARGETS
    outbox_lag_alert_s: int = 300  # OUTBOX_LAG_ALERT_S
    worker_poll_s: int = 1  # WORKER_POLL_S
    # How many webhooks and calendar exchanges the worker runs at once; each organization gets
    # at most one of either, so one tenant's slow servers hold one slot, never all of them.
    webhook_concurrency: int = 4  # WEBHOOK_CONCURRENCY
    calendar_concurrency: int = 3  # CALENDAR_CONCURRENCY
    secret_key: str = ""  # SECRET_KEY: seals stored provider credentials (Fernet)
    secret_key_previous: str = ""  # SECRET_KEY_PREVIOUS: older keys, comma-separated (rotation)
    smtp_url: str = ""  # SMTP_URL: smtp://user:pass@host:587 (STARTTLS) or smtps://...
    twilio_api_base_url: str = "https://api.twilio.com"  # TWILIO_API_BASE_URL
    calendar_poll_seconds: int = 60  # CALENDAR_POLL_SECONDS
    calendar_timeout_s: int = 10  # CALENDAR_TIMEOUT_S
    calendar_allow_private_targets: bool = False  # CALENDAR_ALLOW_PRIVATE_TARGETS
    # PUBLIC_URL: where callers' calendar apps reach this service (the ICS feed URLs printed)
    public_url: str = "http://127.0.0.1:8000"
    # PUBLIC_BASE_URL: where Google and Microsoft send the owner back after consent
    # (<PUBLIC_BASE_URL>/oauth/<provider>/callback); PUBLIC_URL when unset.
    public_base_url: str = ""
    google_client_id: str = ""  # GOOGLE_CLIENT_ID: unset, Google Calendar is not offered
    google_client_secret: str = ""  # GOOGLE_CLIENT_SECRET
    google_auth_url: str = "https://accounts.google.com/o/oauth2/v2/auth"  # GOOGLE_AUTH_URL
    # GOOGLE_TOKEN_URL
    google_token_url: str = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
    # GOOGLE_CALENDAR_API_URL
    google_calendar_api_url: str = "https://www.googleapis.com/calendar/v3/"
    microsoft_client_id: str = ""  # MICROSOFT_CLIENT_ID: unset, Microsoft 365 is not offered
    microsoft_client_secret: str = ""  # MICROSOFT_CLIENT_SECRET
    # MICROSOFT_AUTHORITY_URL: common = work, school and personal accounts
    microsoft_authority_url: str = "https://login.microsoftonline.com/common/"
    microsoft_graph_url: str = "https://graph.microsoft.com/v1.0/"  # MICROSOFT_GRAPH_URL
    testing: bool = False  # not an environment variable: tests set it

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (defaults where unset)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, field_name, kind in _ENV_VARS:
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            values[field_name] = _coerce(name, raw, kind)
        return cls(**values)

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> Settings:
        """Return a copy with fields replaced; keys may be field names or variable names."""
        if not overrides:
            return self
        by_env = {env: field for env, field, _ in _ENV_VARS}
        known = {f.name for f in fields(self)}
        changes = {}
        for key, value in overrides.items():
            name = by_env.get(key, key.lower())
            if name not in known:
                raise ConfigError(f"unknown setting {key!r}")
            changes[name] = value
        return replace(self, **changes)

    def validate(self) -> Settings:
        """Raise ConfigError when the settings cannot work."""
        if not self.database_url:
            raise ConfigError("DATABASE_URL is not set (expected postgresql+psycopg://...)")
        if not self.database_url.startswith("postgresql+psycopg://"):
            raise ConfigError("DATABASE_URL must start with postgresql+psycopg:// (psycopg 3)")
        if self.max_body_bytes < 1024:
            raise ConfigError("MAX_BODY_BYTES must be at least 1024")
        if self.log_format not in ("text", "json"):
            raise ConfigError("LOG_FORMAT must be text or json")
        if self.db_pooler not in ("none", "transaction"):
            raise ConfigError("DB_POOLER must be none or transaction")
        if self.direct_database_url and not self.direct_database_url.startswith(
            "postgresql+psycopg://"
        ):
            raise ConfigError(
                "DIRECT_DATABASE_URL must start with postgresql+psycopg:// (psycopg 3)"
            )
        if self.smtp_url and not self.smtp_url.startswith(("smtp://", "smtps://")):
            raise ConfigError("SMTP_URL must start with smtp:// or smtps://")
        if self.secret_key and len(self.secret_key) < 32:
            raise ConfigError("SECRET_KEY must be at least 32 characters (use a random one)")
        if not 1 <= self.webhook_concurrency <= 32 or not 1 <= self.calendar_concurrency <= 32:
            raise ConfigError("WEBHOOK_CONCURRENCY and CALENDAR_CONCURRENCY must be 1 to 32")
        if self.calendar_poll_seconds < 1 or self.calendar_timeout_s < 1:
            raise ConfigError("CALENDAR_POLL_SECONDS and CALENDAR_TIMEOUT_S must be at least 1")
        if not self.public_url.startswith(("http://", "https://")):
            raise ConfigError("PUBLIC_URL must start with http:// or https://")
        if self.public_base_url and not self.public_base_url.startswith(("http://", "https://")):
            raise ConfigError("PUBLIC_BASE_URL must start with http:// or https://")
        if self.request_commit_limit_s < self.request_budget_s:
            raise ConfigError("REQUEST_COMMIT_LIMIT_S must not be below REQUEST_BUDGET_S")
        try:
            parse_networks(self.trusted_proxies)
        except ValueError as exc:
            raise ConfigError(f"TRUSTED_PROXIES: {exc}") from None
        return self

    @property
    def base_url(self) -> str:
        """This service's address in links that leave it (OAuth callbacks, callers' manage
        links): PUBLIC_BASE_URL, else PUBLIC_URL."""
        return (self.public_base_url or self.public_url).rstrip("/")

    def session_url(self) -> str:
        """Where work that needs a session of its own goes (migrations, schema adopt):
        DIRECT_DATABASE_URL when set, else DATABASE_URL. Behind a transaction-mode pooler
        (DB_POOLER=transaction) without DIRECT_DATABASE_URL it raises ConfigError: session
        settings would be left on connections the pooler hands to other clients."""
        if self.direct_database_url:
            return self.direct_database_url
        if self.db_pooler == "transaction":
            raise ConfigError(
                "DIRECT_DATABASE_URL is not set: with DB_POOLER=transaction, migrations and "
                "schema adopt need a connection straight to PostgreSQL, past the pooler"
            )
        return self.database_url


_ENV_VARS: tuple[tuple[str, str, type], ...] = (
    ("DATABASE_URL", "database_url", str),
    ("DIRECT_DATABASE_URL", "direct_database_url", str),
    ("DB_POOLER", "db_pooler", str),
    ("LOG_LEVEL", "log_level", str),
    ("MAX_BODY_BYTES", "max_body_bytes", int),
    ("DB_POOL_SIZE", "db_pool_size", int),
    ("DB_CONNECT_TIMEOUT_S", "db_connect_timeout_s", int),
    ("DB_STATEMENT_TIMEOUT_MS", "db_statement_timeout_ms", int),
    ("DB_LOCK_TIMEOUT_MS", "db_lock_timeout_ms", int),
    ("REQUEST_BUDGET_S", "request_budget_s", int),
    ("REQUEST_COMMIT_LIMIT_S", "request_commit_limit_s", int),
    ("MAX_CONCURRENT_PER_ORG", "max_concurrent_per_org", int),
    ("LOG_FORMAT", "log_format", str),
    ("METRICS_TOKEN", "metrics_token", str),
    ("TRUSTED_PROXIES", "trusted_proxies", str),
    ("MAX_CHANGES_PER_CALL", "max_changes_per_call", int),
    ("SCHEMA_CHECK_OVERRIDE", "schema_check_override", bool),
    ("HMAC_WINDOW_S", "hmac_window_s", int),
    ("WEBHOOK_TIMEOUT_S", "webhook_timeout_s", int),
    ("WEBHOOK_ALLOW_PRIVATE_TARGETS", "webhook_allow_private_targets", bool),
    ("OUTBOX_LAG_ALERT_S", "outbox_lag_alert_s", int),
    ("WORKER_POLL_S", "worker_poll_s", int),
    ("WEBHOOK_CONCURRENCY", "webhook_concurrency", int),
    ("CALENDAR_CONCURRENCY", "calendar_concurrency", int),
    ("SECRET_KEY", "secret_key", str),
    ("SECRET_KEY_PREVIOUS", "secret_key_previous", str),
    ("SMTP_URL", "smtp_url", str),
    ("TWILIO_API_BASE_URL", "twilio_api_base_url", str),
    ("CALENDAR_POLL_SECONDS", "calendar_poll_seconds", int),
    ("CALENDAR_TIMEOUT_S", "calendar_timeout_s", int),
    ("CALENDAR_ALLOW_PRIVATE_TARGETS", "calendar_allow_private_targets", bool),
    ("PUBLIC_URL", "public_url", str),
    ("PUBLIC_BASE_URL", "public_base_url", str),
    ("GOOGLE_CLIENT_ID", "google_client_id", str),
    ("GOOGLE_CLIENT_SECRET", "google_client_secret", str),
    ("GOOGLE_AUTH_URL", "google_auth_url", str),
    ("GOOGLE_TOKEN_URL", "google_token_url", str),
    ("GOOGLE_CALENDAR_API_URL", "google_calendar_api_url", str),
    ("MICROSOFT_CLIENT_ID", "microsoft_client_id", str),
    ("MICROSOFT_CLIENT_SECRET", "microsoft_client_secret", str),
    ("MICROSOFT_AUTHORITY_URL", "microsoft_authority_url", str),
    ("MICROSOFT_GRAPH_URL", "microsoft_graph_url", str),
)


def _coerce(name: str, raw: str, kind: type) -> Any:
    if kind is int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if value < 0:
            raise ConfigError(f"{name} must not be negative")
        return value
    if kind is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")
    if name == "LOG_LEVEL":
        return raw.upper()
    if name in ("LOG_FORMAT", "DB_POOLER"):
        return raw.lower()
    return raw
