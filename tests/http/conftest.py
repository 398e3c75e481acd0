"""Fixtures of the in-process HTTP tests (the Flask test client, no server process)."""

from __future__ import annotations

import pytest

from booking_service.use_cases.accounts import add_user

PASSWORD = "correct horse battery"


@pytest.fixture
def owner(runtime, org):
    return add_user(runtime.uow(), org.id, "owner@bright.example", "owner", PASSWORD)
