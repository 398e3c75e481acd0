"""The notification tests' world for every test in this folder: an app that texts through the
fake Twilio and mails through a local SMTP server, and an organization with both on (see
tests/support/notifications.py). A module may still define its own `app` (the fairness tests
do): the `org` here is then made in that app."""

from tests.support.notifications import app, env, mailbox, org, twilio  # noqa: F401 - fixtures
