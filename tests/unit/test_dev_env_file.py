"""The .env file `make run` writes (booking_service.devtools.pgcluster): a user's own is left
alone, ours is rewritten (moved from tests/stack/test_dev_cluster.py: it starts nothing)."""

from __future__ import annotations

from booking_service.devtools import pgcluster


def test_a_user_env_file_is_left_alone(tmp_path):
    mine = tmp_path / ".env"
    mine.write_text("SECRET_THING=1\n")
    assert not pgcluster.write_env_file(mine, "postgresql+psycopg://x@127.0.0.1:1/db")
    assert mine.read_text() == "SECRET_THING=1\n"
    ours = tmp_path / "ours.env"
    assert pgcluster.write_env_file(ours, "postgresql+psycopg://x@127.0.0.1:1/a")
    assert pgcluster.write_env_file(ours, "postgresql+psycopg://x@127.0.0.1:2/b")
    assert ours.read_text().endswith("DATABASE_URL=postgresql+psycopg://x@127.0.0.1:2/b\n")
