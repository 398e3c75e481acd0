"""The outbox worker: webhooks, messages and calendars, each on threads of its own."""
