"""Repositories: every query lives here, one module per aggregate. They execute, never commit.

- organizations: authentication lookups, booking rules, secrets, accepted HMAC signatures;
- contacts: the race-safe upsert on uq_contacts_org_phone and the phone-less email path;
- appointments: the booking insert, a contact's holdings, lookups by proof, cancel and move;
- schedule: resources, hours, exceptions, busy ranges and the service catalogue;
- ledger: the idempotency ledger of tool calls and the change count;
- adoption: taking over an existing contacts table.

Statements that every booking runs are built once at import (building one costs about as
much as running it) and bound per call; bind names differ from column names. Each module
defines the row types it returns.
"""
