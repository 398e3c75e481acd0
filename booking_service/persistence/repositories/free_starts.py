"""The nearest free starts, computed in PostgreSQL: what a refusal offers (#30).

`domain/scheduling.free_slots` finds free starts in Python over every booking of the days it
searches; in a busy diary that is hundreds of rows per refusal, loaded and walked in Python.
One statement, the PL/pgSQL function `free_starts` (migration abe15f4c4cbd holds its SQL,
b904fd1f287d its one change since), finds the same starts where the bookings are, and returns
only the few the caller hears:

- each resource's opening ranges per local day searched (the day's exceptions, else its
  weekday's hours), turned into grid starts by wall-clock minute in the organization's zone:
  a start inside a spring-forward gap does not exist, an ambiguous one (fall-back) is its
  earlier occurrence, and a closing time inside a gap moves past it, as zoneinfo's fold=0
  does (PostgreSQL alone would take the later occurrence of an ambiguous time);
- each resource's busy time as one multirange (`range_agg`: its bookings, buffers included,
  found through the exclusion constraint's GiST index, and the busy times of its blocking
  calendars), against which each start's [start, end + buffer) is tested in memory;
- notice, horizon, and a blocking calendar that is stale with policy "refuse" (that
  resource offers nothing, as it could not be booked);
- one start per time, named after the lowest free resource id; the `limit` nearest to the
  asked time (or the earliest), ordered as the Python engine orders them.

The Python engine stays the reference: tests/integration/test_free_starts_property.py
compares the two over random diaries (hours, exceptions, bookings, buffers, calendars,
several resources, DST days).
"""

from __future__ import annotations

import time as time_module
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Float,
    Integer,
    Text,
    bindparam,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from booking_service.domain.errors import OutOfTime
from booking_service.domain.scheduling import SEARCH_CHUNK, Rules
from booking_service.domain.slots import Slot
from booking_service.persistence.repositories.driver import HotStatement

# The statement is a PL/pgSQL function (migration abe15f4c4cbd), called with the search's
# parameters: PostgreSQL keeps its generic plan per server connection, also behind a
# transaction pooler, where nothing is prepared. As a plain statement it planned it afresh at
# every execution (0.7 ms; it kept choosing custom plans), unless every search was sent with
# `set_config('plan_cache_mode', ...)` before and after it, two statements more per refusal.
# `p_around` NULL asks for the earliest starts.
_SEARCH = HotStatement(
    text(
        "SELECT free_start, free_resource_id FROM free_starts("
        "CAST(:p_org AS BIGINT), CAST(:p_resources AS BIGINT[]), CAST(:p_first AS DATE), "
        "CAST(:p_last AS DATE), CAST(:p_zone AS TEXT), CAST(:p_slot AS INTEGER), "
        "CAST(:p_now AS TIMESTAMPTZ), CAST(:p_earliest AS TIMESTAMPTZ), "
        "CAST(:p_latest AS TIMESTAMPTZ), CAST(:p_busy_from AS TIMESTAMPTZ), "
        "CAST(:p_busy_to AS TIMESTAMPTZ), CAST(:p_duration AS DOUBLE PRECISION), "
        "CAST(:p_blocked AS DOUBLE PRECISION), CAST(:p_exclude AS BIGINT), "
        "CAST(:p_limit AS INTEGER), CAST(:p_around AS TIMESTAMPTZ))"
    ).bindparams(
        bindparam("p_org", type_=BigInteger),
        bindparam("p_resources", type_=ARRAY(BigInteger)),
        bindparam("p_first", type_=Date),
        bindparam("p_last", type_=Date),
        bindparam("p_zone", type_=Text),
        bindparam("p_slot", type_=Integer),
        bindparam("p_now", type_=DateTime(timezone=True)),
        bindparam("p_earliest", type_=DateTime(timezone=True)),
        bindparam("p_latest", type_=DateTime(timezone=True)),
        bindparam("p_busy_from", type_=DateTime(timezone=True)),
        bindparam("p_busy_to", type_=DateTime(timezone=True)),
        bindparam("p_duration", type_=Float),
        bindparam("p_blocked", type_=Float),
        bindparam("p_exclude", type_=BigInteger),
        bindparam("p_limit", type_=Integer),
        bindparam("p_around", type_=DateTime(timezone=True)),
    )
)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, datetime.min.time()).replace(tzinfo=zone)


# The bookings and busy times read are those that can overlap a candidate: every start lies at
# or after the first day's local midnight, and every candidate's [start, start + blocked) ends
# by the last day's closing (at the latest the next midnight) plus the buffer. The margin
# covers a midnight that a clock change moves (no zone changes its offset by more than a few
# hours at once). A day either side, as the Python engine loads them, read three days for a
# one-day search: on make bench's 50,000-booking diary a one-day search (client included) took
# 1.10-1.36 ms that way and 0.97-1.01 ms this way, alternating (#30).
_BUSY_MARGIN = timedelta(hours=6)

# How far from the asked time a refusal's first search looks (FreeStarts.nearest). A busy day
# usually has free starts within it: on make bench's 50,000-booking diary the one-day search
# read 217 bookings and ordered 287 candidate starts; within two hours it reads about 30 and
# orders 48. A day with no `limit` free starts that near costs one (small) statement more.
NEAR_FIRST = timedelta(hours=2)


class FreeStarts:
    """scheduling.WindowSearch in PostgreSQL for some resources of one organization: one
    statement per window searched, returning at most `limit` rows."""

    def __init__(
        self,
        session: Session,
        org_id: int,
        timezone: str,
        resources: dict[int, str],
        rules: Rules,
        now: datetime,
        duration: timedelta,
        *,
        exclude_id: int | None = None,
        deadline: float | None = None,
    ):
        self.session = session
        self.zone = ZoneInfo(timezone)
        self.names = resources
        self.deadline = deadline
        self.blocked = duration + rules.buffer
        self.first_start, self.last_start = rules.earliest(now), rules.latest(now)
        # An asked time whose near hours were searched whole and held fewer than `limit`
        # starts: they hold as few for every later window, so they are not searched again.
        self._short_near: tuple[datetime, int] | None = None
        self.params = {
            "p_org": org_id,
            "p_resources": sorted(resources),
            "p_zone": timezone,
            "p_slot": rules.slot_minutes,
            "p_now": now,
            "p_duration": duration.total_seconds(),
            "p_blocked": self.blocked.total_seconds(),
            "p_exclude": exclude_id if exclude_id is not None else 0,  # ids start at 1
        }

    def _run(
        self,
        first: date,
        last: date,
        limit: int,
        around: datetime | None,
        within: timedelta | None = None,
    ):
        if first > last or limit <= 0 or not self.names:
            return []
        if self.deadline is not None and time_module.monotonic() > self.deadline:
            raise OutOfTime()
        earliest, latest = self.first_start, self.last_start
        busy_from = _midnight(first, self.zone) - _BUSY_MARGIN
        busy_to = _midnight(last + timedelta(days=1), self.zone) + _BUSY_MARGIN + self.blocked
        if around is not None and within is not None:
            # Only the starts within `within` of `around`: every candidate's [start, start +
            # blocked) then lies in the busy window below, so reading only the bookings
            # that overlap it tests each candidate as the whole days' bookings would.
            earliest, latest = max(earliest, around - within), min(latest, around + within)
            busy_from = max(busy_from, around - within)
            busy_to = min(busy_to, around + within + self.blocked)
        params = {
            **self.params,
            "p_first": first,
            "p_last": last,
            "p_earliest": earliest,
            "p_latest": latest,
            "p_busy_from": busy_from,
            "p_busy_to": busy_to,
            "p_limit": limit,
            "p_around": around,
        }
        rows = _SEARCH.execute(self.session, params).all()
        return [
            Slot(r.free_start.astimezone(UTC), r.free_resource_id, self.names[r.free_resource_id])
            for r in rows
        ]

    def nearest(self, first: date, last: date, around: datetime, limit: int) -> list[Slot]:
        """Up to `limit` free starts of local dates first..last nearest to `around`.

        The hours around the asked time are searched first (`NEAR_FIRST`): when `limit`
        starts lie within them, they are the answer, since every start outside lies farther
        from `around` than all of them. Otherwise the whole days are searched. So does a
        window of several days: a time asked near midnight is not settled by its own day (a
        start of the next may be nearer), and the two-day window that follows costs what
        five whole days cost unless its near hours answer first (about one refusal in ten
        in make bench's diary, which asks around the clock)."""
        known = self._short_near
        searched = known is not None and known[0] == around and known[1] < limit
        if not searched and self._near_holds_starts(first, last, around):
            near = self._run(first, last, limit, around, NEAR_FIRST)
            if len(near) == limit:
                return near
            if self._near_days_within(first, last, around):
                self._short_near = (around, len(near))
        return self._run(first, last, limit, around)

    def _near_days_within(self, first: date, last: date, around: datetime) -> bool:
        """Every local day the hours around `around` touch is one of first..last: a search
        of them then found every start they hold, whatever days a later window adds."""
        lo = (around - NEAR_FIRST).astimezone(self.zone).date()
        hi = (around + NEAR_FIRST).astimezone(self.zone).date()
        return first <= lo and hi <= last

    def _near_holds_starts(self, first: date, last: date, around: datetime) -> bool:
        """The hours around `around` can hold starts of the days first..last: they overlap
        notice to horizon and those days. A time asked in the past, too soon or too far
        ahead may lie hours from any start, and the first search would find none for certain
        (and hand the function an empty busy window)."""
        lo, hi = around - NEAR_FIRST, around + NEAR_FIRST
        return (
            max(lo, self.first_start) <= min(hi, self.last_start)
            and lo < _midnight(last + timedelta(days=1), self.zone)
            and hi >= _midnight(first, self.zone)
        )

    def earliest(self, first: date, last: date, limit: int) -> list[Slot]:
        """The `limit` earliest free starts of local dates first..last, 14 days a statement
        (an empty stretch of a long horizon costs what the Python engine's chunks cost)."""
        found: list[Slot] = []
        day = first
        while day <= last and len(found) < limit:
            chunk_end = min(day + SEARCH_CHUNK, last)
            found += self._run(day, chunk_end, limit - len(found), None)
            day = chunk_end + timedelta(days=1)
        return found
