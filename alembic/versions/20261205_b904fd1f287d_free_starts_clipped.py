"""The free-starts search generates only the candidate starts it may offer (#30).

A refusal now searches the two hours around the asked time first
(repositories/free_starts.FreeStarts.nearest), by narrowing the function's notice and horizon
bounds (`p_earliest`, `p_latest`) and its busy window. The function still generated every grid
start of each opening range and filtered them afterwards: 287 on a day open around the clock
on a 5-minute grid, to keep about 48. Here, on a day whose UTC offset is regular (a start is
then its midnight plus its minutes, see `spans`), the grid minutes generated are those between
`p_earliest` and `p_latest`, still on the range's grid; a clock change's day generates them all,
as before. The filters after it are unchanged, so this only removes candidates they would drop.

Measured on `make bench`'s 50,000-booking diary (1,500 one-day searches, three alternating
rounds, server CPU per search): the whole day 1,110-1,280 us; within two hours of the asked
time 640-730 us before this, 500-580 us with it.

The SQL is the previous revision's with that one change, read from its module (which, as every
applied migration, is history and is not edited); upgrade refuses to run if the line it
replaces is not there.

Revision ID: b904fd1f287d
Revises: abe15f4c4cbd
Create Date: 2026-12-05 13:40:00
"""

from collections.abc import Sequence

from alembic import context, op

revision: str = "b904fd1f287d"
down_revision: str | Sequence[str] | None = "abe15f4c4cbd"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _previous() -> str:
    """The function as revision abe15f4c4cbd created it (alembic has loaded its module)."""
    module = context.script.get_revision("abe15f4c4cbd").module
    return module.FREE_STARTS.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


_ALL_MINUTES = (
    "        CROSS JOIN LATERAL generate_series(sp.m_first, sp.m_close - 1, p_slot) AS g (minute)\n"
)
# start = regular_midnight + minute: start >= p_earliest is minute >= ceil(seconds / 60), whose
# first minute on the range's grid is m_first plus whole slots; start <= p_latest is minute <=
# floor(seconds / 60). Both bounds are clamped to the day before the cast (a bound years away
# would not fit an integer). timestamptz - timestamptz counts a day as 24 hours, as
# extract(epoch) does.
_MINUTES_WANTED = """\
        CROSS JOIN LATERAL (
            SELECT CASE WHEN sp.regular_midnight IS NULL THEN sp.m_first
                        ELSE sp.m_first + p_slot * ceil(greatest(0, least(1440, ceil(
                            extract(epoch FROM p_earliest - sp.regular_midnight) / 60))
                            - sp.m_first) / p_slot)::int END AS lo,
                   CASE WHEN sp.regular_midnight IS NULL THEN sp.m_close - 1
                        ELSE greatest(-1, least(sp.m_close - 1, floor(
                            extract(epoch FROM p_latest - sp.regular_midnight) / 60)))::int
                        END AS hi
        ) wanted
        CROSS JOIN LATERAL generate_series(wanted.lo, wanted.hi, p_slot) AS g (minute)
"""


def upgrade() -> None:
    previous = _previous()
    if _ALL_MINUTES not in previous:
        raise RuntimeError("revision abe15f4c4cbd's free_starts is not the one this changes")
    op.execute(previous.replace(_ALL_MINUTES, _MINUTES_WANTED))


def downgrade() -> None:
    op.execute(_previous())
