"""The nearest free starts, computed in PostgreSQL: what a refusal offers (#30).

`domain/scheduling.free_slots` finds free starts in Python over every booking of the days it
searches; in a busy diary that is hundreds of rows per refusal, loaded and walked in Python.
This statement finds the same starts where the bookings are, and returns only the few the
caller hears:

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

import psycopg
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
from booking_service.persistence.repositories.driver import HotStatement, defer

# The candidates' wall times -> instants, as `scheduling.wall_to_aware` and `_range_bounds`:
# `ua` is PostgreSQL's reading (the offset before a gap: zoneinfo's too; the LATER occurrence
# of an ambiguous time: zoneinfo's fold=0 takes the earlier), `ub` the reading with the offset
# three hours of wall clock before (no zone changes its offset twice within three hours),
# which, when it reads back as the same wall time, is the earlier occurrence.
_FREE_STARTS = """
WITH res AS (
    SELECT r.id AS resource_id
    FROM unnest(CAST(:p_resources AS BIGINT[])) AS r (id)
    WHERE NOT EXISTS (
        SELECT 1 FROM calendar_links l
        WHERE l.org_id = :p_org AND l.resource_id = r.id AND l.block
          AND l.when_stale = 'refuse'
          AND (l.last_good_sync_at IS NULL
               OR l.last_good_sync_at + l.max_staleness_minutes * interval '1 minute'
                  <= CAST(:p_now AS TIMESTAMPTZ)))
),
days AS (
    SELECT CAST(:p_first AS DATE) + i AS day
    FROM generate_series(0, CAST(:p_last AS DATE) - CAST(:p_first AS DATE)) AS i
),
opening AS (
    SELECT x.resource_id, x.day, x.opens, x.closes
    FROM schedule_exceptions x JOIN res USING (resource_id)
    WHERE x.org_id = :p_org AND x.day BETWEEN CAST(:p_first AS DATE) AND CAST(:p_last AS DATE)
      AND x.opens IS NOT NULL
    UNION ALL
    SELECT h.resource_id, d.day, h.opens, h.closes
    FROM res
    JOIN working_hours h ON h.org_id = :p_org AND h.resource_id = res.resource_id
    JOIN days d ON h.weekday = extract(isodow FROM d.day) - 1
    WHERE NOT EXISTS (
        SELECT 1 FROM schedule_exceptions x
        WHERE x.org_id = :p_org AND x.resource_id = h.resource_id AND x.day = d.day)
),
-- Per opening range: its grid minutes, its closing instant and, on a day whose UTC offset
-- holds from three hours before it to three after (every day but a clock change's), the
-- instant of its midnight: then a start is that plus its minutes, with no zone lookup.
spans AS MATERIALIZED (
    SELECT o.resource_id, o.day,
           (m.m_open + :p_slot - 1) / :p_slot * :p_slot AS m_first, m.m_close,
           CASE WHEN (c.ub AT TIME ZONE :p_zone) = c.wall AND c.ub < c.ua THEN c.ub
                ELSE c.ua END AS close_at,
           CASE WHEN z.next - z.midnight = interval '24 hours'
                 AND (z.midnight AT TIME ZONE :p_zone) = o.day
                 AND (z.next AT TIME ZONE :p_zone) = o.day + 1
                 AND (z.midnight - interval '3 hours') AT TIME ZONE :p_zone
                     = o.day - interval '3 hours'
                 AND (z.next + interval '3 hours') AT TIME ZONE :p_zone
                     = o.day + 1 + interval '3 hours'
                THEN z.midnight END AS regular_midnight
    FROM opening o
    CROSS JOIN LATERAL (
        SELECT (extract(hour FROM o.opens) * 60 + extract(minute FROM o.opens))::int AS m_open,
               (extract(hour FROM o.closes) * 60 + extract(minute FROM o.closes))::int AS m_close
    ) m
    CROSS JOIN LATERAL (
        SELECT o.day + o.closes AS wall,
               (o.day + o.closes) AT TIME ZONE :p_zone AS ua,
               (o.day + o.closes - interval '3 hours') AT TIME ZONE :p_zone
                   + interval '3 hours' AS ub
    ) c
    CROSS JOIN LATERAL (
        SELECT CAST(o.day AS TIMESTAMP) AT TIME ZONE :p_zone AS midnight,
               CAST(o.day + 1 AS TIMESTAMP) AT TIME ZONE :p_zone AS next
    ) z
),
starts AS MATERIALIZED (
    SELECT sp.resource_id, sp.close_at,
           CASE WHEN sp.regular_midnight IS NOT NULL
                THEN sp.regular_midnight + g.minute * interval '1 minute'
                ELSE (
                    SELECT CASE WHEN (w.ua AT TIME ZONE :p_zone) <> w.wall THEN NULL
                                WHEN (w.ub AT TIME ZONE :p_zone) = w.wall AND w.ub < w.ua
                                THEN w.ub
                                ELSE w.ua END
                    FROM (
                        SELECT l.wall,
                               l.wall AT TIME ZONE :p_zone AS ua,
                               (l.wall - interval '3 hours') AT TIME ZONE :p_zone
                                   + interval '3 hours' AS ub
                        FROM (SELECT sp.day + g.minute * interval '1 minute' AS wall) l
                    ) w
                ) END AS start
    FROM spans sp
    CROSS JOIN LATERAL generate_series(sp.m_first, sp.m_close - 1, :p_slot) AS g (minute)
),
busy AS MATERIALIZED (
    SELECT b.resource_id, range_agg(b.span) AS busy
    FROM (
        SELECT a.resource_id, tstzrange(a.starts_at, a.blocked_until, '[)') AS span
        FROM appointments a
        WHERE a.org_id = :p_org AND a.resource_id = ANY (CAST(:p_resources AS BIGINT[]))
          AND a.status <> 'cancelled'
          AND tstzrange(a.starts_at, a.blocked_until, '[)')
              && tstzrange(CAST(:p_busy_from AS TIMESTAMPTZ), CAST(:p_busy_to AS TIMESTAMPTZ),
                           '[)')
          AND a.id <> :p_exclude
        UNION ALL
        SELECT c.resource_id, tstzrange(c.starts_at, c.ends_at, '[)')
        FROM calendar_busy c
        WHERE c.org_id = :p_org AND c.resource_id = ANY (CAST(:p_resources AS BIGINT[]))
          AND c.starts_at < CAST(:p_busy_to AS TIMESTAMPTZ)
          AND c.ends_at > CAST(:p_busy_from AS TIMESTAMPTZ)
          AND EXISTS (
              SELECT 1 FROM calendar_links l
              WHERE l.id = c.link_id AND l.resource_id = c.resource_id AND l.block)
    ) b
    GROUP BY b.resource_id
)
"""

_PARAMS = (
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
)


def _tail(order: str) -> str:
    """The candidate starts within notice, horizon and closing, in `order` (its first key
    decides; then the start; then the resource, so that DISTINCT ON names the lowest free
    one), tested against the busy multirange only until `p_limit` starts are found: OFFSET 0
    keeps that test out of the sorted subquery, so that it runs on its rows in order."""
    # `order` is one of the two constant expressions below, never input.
    return f"""SELECT DISTINCT ON (o.key, o.start) o.start, o.resource_id
FROM (
    SELECT s.start, s.resource_id, {order} AS key
    FROM starts s
    WHERE s.start >= CAST(:p_earliest AS TIMESTAMPTZ)
      AND s.start > CAST(:p_now AS TIMESTAMPTZ)
      AND s.start <= CAST(:p_latest AS TIMESTAMPTZ)
      AND s.start + make_interval(secs => :p_duration) <= s.close_at
    ORDER BY 3, 1, 2
    OFFSET 0
) o
WHERE NOT coalesce((
    SELECT b.busy && tstzrange(o.start, o.start + make_interval(secs => :p_blocked), '[)')
    FROM busy b WHERE b.resource_id = o.resource_id), false)
ORDER BY o.key, o.start, o.resource_id
LIMIT :p_limit"""  # noqa: S608


# Nearest first (a tie: the earlier), as scheduling.closest orders them.
_NEAREST = HotStatement(
    text(
        _FREE_STARTS + _tail("abs(extract(epoch FROM s.start - CAST(:p_around AS TIMESTAMPTZ)))")
    ).bindparams(*_PARAMS, bindparam("p_around", type_=DateTime(timezone=True)))
)
_EARLIEST = HotStatement(text(_FREE_STARTS + _tail("CAST(0 AS NUMERIC)")).bindparams(*_PARAMS))


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


# PostgreSQL plans these statements afresh at every execution even when prepared: it keeps
# choosing custom plans (0 generic of 426 executions, make profile-refusals), at 0.7 ms of
# planning each, while their generic plan answers a refusal in ~1.3 ms against ~2.1 ms
# (measured on make bench's 50,000-booking diary, #30). So a prepared one runs with the
# generic plan forced: the setting (transaction-local) travels with it in one pipeline, and
# "auto" is put back with the transaction's next statement, before anything else runs.
# Behind a transaction pooler nothing is prepared, and nothing is sent.
_GENERIC_PLAN = "SELECT set_config('plan_cache_mode', 'force_generic_plan', true)"
_AUTO_PLAN = "SELECT set_config('plan_cache_mode', 'auto', true)"


def _prepared(session: Session) -> bool:
    """Whether the session's connection prepares statements (psycopg's prepare_threshold)."""
    dbapi = session.connection().connection.driver_connection
    assert isinstance(dbapi, psycopg.Connection)
    return dbapi.prepare_threshold is not None


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
        self.params = {
            "p_org": org_id,
            "p_resources": sorted(resources),
            "p_zone": timezone,
            "p_slot": rules.slot_minutes,
            "p_now": now,
            "p_earliest": rules.earliest(now),
            "p_latest": rules.latest(now),
            "p_duration": duration.total_seconds(),
            "p_blocked": self.blocked.total_seconds(),
            "p_exclude": exclude_id if exclude_id is not None else 0,  # ids start at 1
        }

    def _run(self, statement: HotStatement, first: date, last: date, limit: int, **extra):
        if first > last or limit <= 0 or not self.names:
            return []
        if self.deadline is not None and time_module.monotonic() > self.deadline:
            raise OutOfTime()
        generic = _prepared(self.session)
        if generic:
            defer(self.session, _GENERIC_PLAN)
        rows = statement.execute(
            self.session,
            {
                **self.params,
                "p_first": first,
                "p_last": last,
                "p_busy_from": _midnight(first, self.zone) - _BUSY_MARGIN,
                "p_busy_to": _midnight(last + timedelta(days=1), self.zone)
                + _BUSY_MARGIN
                + self.blocked,
                "p_limit": limit,
                **extra,
            },
        ).all()
        if generic:
            defer(self.session, _AUTO_PLAN)
        return [
            Slot(r.start.astimezone(UTC), r.resource_id, self.names[r.resource_id]) for r in rows
        ]

    def nearest(self, first: date, last: date, around: datetime, limit: int) -> list[Slot]:
        """Up to `limit` free starts of local dates first..last nearest to `around`."""
        return self._run(_NEAREST, first, last, limit, p_around=around)

    def earliest(self, first: date, last: date, limit: int) -> list[Slot]:
        """The `limit` earliest free starts of local dates first..last, 14 days a statement
        (an empty stretch of a long horizon costs what the Python engine's chunks cost)."""
        found: list[Slot] = []
        day = first
        while day <= last and len(found) < limit:
            chunk_end = min(day + SEARCH_CHUNK, last)
            found += self._run(_EARLIEST, day, chunk_end, limit - len(found))
            day = chunk_end + timedelta(days=1)
        return found
