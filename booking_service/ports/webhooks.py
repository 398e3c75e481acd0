"""The webhook sender: one signed POST of an event to an organization's endpoint
(adapters/webhooks.py, Standard Webhooks over httpx)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Sent:
    """What one attempt got: a status code, or an error (timeout, refused, bad target)."""

    status_code: int | None
    error: str | None
    latency_ms: int
    retry_after_s: float | None = None


class WebhookSender(Protocol):
    def send(
        self,
        url: str,
        *,
        event_id: str,
        body: str,
        secrets: list[str],
        timeout_s: float,
        allow_private: bool,
    ) -> Sent:
        """POST `body` to `url`, signed with every secret; never raises for what the target
        does."""
