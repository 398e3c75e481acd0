"""The calendar tests' world for every test in this folder: Radicale on loopback, an app allowed
to reach it, an organization, its Main resource, the worker's clock and CalendarSync (see
tests/support/calendars.py)."""

from tests.support.calendars import app, clock, dav, main_id, org, sync  # noqa: F401 - fixtures
