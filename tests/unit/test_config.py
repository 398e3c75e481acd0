"""Settings that decide where connections go."""

from __future__ import annotations

import pytest

from booking_service.config import ConfigError, Settings

URL = "postgresql+psycopg://app@pooler:6432/booking_service"
DIRECT = "postgresql+psycopg://app@db:5432/booking_service"


def test_behind_a_transaction_pooler_session_work_needs_the_direct_url():
    pooled = Settings(database_url=URL, db_pooler="transaction").validate()
    with pytest.raises(ConfigError, match="DIRECT_DATABASE_URL"):
        pooled.session_url()
    assert (
        Settings(
            database_url=URL, db_pooler="transaction", direct_database_url=DIRECT
        ).session_url()
        == DIRECT
    )
    assert Settings(database_url=URL).session_url() == URL


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_URL": URL, "DB_POOLER": "session"}, "DB_POOLER"),
        ({"DATABASE_URL": URL, "DIRECT_DATABASE_URL": "postgres://x"}, "DIRECT_DATABASE_URL"),
    ],
)
def test_bad_pooler_settings_are_refused_by_name(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env).validate()


def test_db_pooler_is_read_case_insensitively():
    assert Settings.from_env({"DATABASE_URL": URL, "DB_POOLER": "Transaction"}).db_pooler == (
        "transaction"
    )
