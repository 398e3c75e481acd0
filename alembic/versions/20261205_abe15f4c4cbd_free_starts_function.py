"""The free-starts search as a PL/pgSQL function whose plan is generic (#30).

A refusal's alternatives come from one statement (repositories/free_starts.py). Sent as a
statement, PostgreSQL kept choosing custom plans for it and planned it afresh at every
execution (0.7 ms), so the driver sent `set_config('plan_cache_mode', 'force_generic_plan')`
before it and `auto` after it, two statements more per refusal; behind a transaction pooler
nothing is prepared, so every refusal also parsed its 6 KB and planned it. As a function with
`SET plan_cache_mode = force_generic_plan`, PL/pgSQL keeps the generic plan per server
connection, for every client a pooler puts on it, and the setting holds for the function's own
statement only. Measured on `make bench`'s 50,000-booking diary, one-day searches (1,000-2,000
each, three alternating rounds): directly connected, server CPU 590-700 -> 530-565 us per
search (its two settings included); unprepared, as behind a pooler, 1,530-1,620 -> 500-530 us
and client wall 1.86-1.95 -> 0.61-0.68 ms. `make profile-refusals`: 10.3 -> 8.1 statements per
refusal, round trips unchanged (8.1; the settings travelled with other statements).

The statement is the one repositories/free_starts.py sent, its parameters now the function's,
and `p_around` NULL for the earliest starts (the order key is then 0 for every start, so they
come by start, then resource, as before). A change to it is a new migration (CREATE OR
REPLACE FUNCTION).

Revision ID: abe15f4c4cbd
Revises: f3b7d2a9c5e1
Create Date: 2026-12-05 12:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "abe15f4c4cbd"
down_revision: str | Sequence[str] | None = "f3b7d2a9c5e1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What each part does (repositories/free_starts.py says why):
# - res: the resources asked for, less any whose blocking calendar is stale with policy
#   "refuse" (that resource offers nothing, as it could not be booked);
# - opening: each resource's opening ranges per local day (the day's exceptions, else its
#   weekday's hours);
# - spans: per opening range its grid minutes and closing instant (see the comment inside);
# - starts: the grid starts by wall-clock minute in the organization's zone: one inside a
#   spring-forward gap does not exist, an ambiguous one (fall-back) is its earlier occurrence
#   (`ua` is PostgreSQL's reading, the later occurrence; `ub` the reading with the offset three
#   hours of wall clock before, which, when it reads back as the same wall time, is the
#   earlier), as zoneinfo's fold=0 reads them;
# - busy: each resource's bookings (buffers included, through the exclusion constraint's GiST
#   index) and its blocking calendars' busy times, as one multirange;
# - the candidates within notice, horizon and closing, in order (nearest to `p_around`, or
#   earliest), tested against the busy multirange only until `p_limit` are found (OFFSET 0
#   keeps that test out of the sorted subquery); one start per time, named after the lowest
#   free resource id.
FREE_STARTS = """
CREATE FUNCTION free_starts(
    p_org bigint,
    p_resources bigint[],
    p_first date,
    p_last date,
    p_zone text,
    p_slot integer,
    p_now timestamptz,
    p_earliest timestamptz,
    p_latest timestamptz,
    p_busy_from timestamptz,
    p_busy_to timestamptz,
    p_duration double precision,
    p_blocked double precision,
    p_exclude bigint,
    p_limit integer,
    p_around timestamptz
) RETURNS TABLE (free_start timestamptz, free_resource_id bigint)
LANGUAGE plpgsql
STABLE
SET plan_cache_mode = force_generic_plan
AS $function$
BEGIN
    RETURN QUERY
    WITH res AS (
        SELECT r.id AS resource_id
        FROM unnest(p_resources) AS r (id)
        WHERE NOT EXISTS (
            SELECT 1 FROM calendar_links l
            WHERE l.org_id = p_org AND l.resource_id = r.id AND l.block
              AND l.when_stale = 'refuse'
              AND (l.last_good_sync_at IS NULL
                   OR l.last_good_sync_at + l.max_staleness_minutes * interval '1 minute'
                      <= p_now))
    ),
    days AS (
        SELECT p_first + i AS day
        FROM generate_series(0, p_last - p_first) AS i
    ),
    opening AS (
        SELECT x.resource_id, x.day, x.opens, x.closes
        FROM schedule_exceptions x JOIN res USING (resource_id)
        WHERE x.org_id = p_org AND x.day BETWEEN p_first AND p_last
          AND x.opens IS NOT NULL
        UNION ALL
        SELECT h.resource_id, d.day, h.opens, h.closes
        FROM res
        JOIN working_hours h ON h.org_id = p_org AND h.resource_id = res.resource_id
        JOIN days d ON h.weekday = extract(isodow FROM d.day) - 1
        WHERE NOT EXISTS (
            SELECT 1 FROM schedule_exceptions x
            WHERE x.org_id = p_org AND x.resource_id = h.resource_id AND x.day = d.day)
    ),
    -- Per opening range: its grid minutes, its closing instant and, on a day whose UTC offset
    -- holds from three hours before it to three after (every day but a clock change's), the
    -- instant of its midnight: then a start is that plus its minutes, with no zone lookup.
    spans AS MATERIALIZED (
        SELECT o.resource_id, o.day,
               (m.m_open + p_slot - 1) / p_slot * p_slot AS m_first, m.m_close,
               CASE WHEN (c.ub AT TIME ZONE p_zone) = c.wall AND c.ub < c.ua THEN c.ub
                    ELSE c.ua END AS close_at,
               CASE WHEN z.next - z.midnight = interval '24 hours'
                     AND (z.midnight AT TIME ZONE p_zone) = o.day
                     AND (z.next AT TIME ZONE p_zone) = o.day + 1
                     AND (z.midnight - interval '3 hours') AT TIME ZONE p_zone
                         = o.day - interval '3 hours'
                     AND (z.next + interval '3 hours') AT TIME ZONE p_zone
                         = o.day + 1 + interval '3 hours'
                    THEN z.midnight END AS regular_midnight
        FROM opening o
        CROSS JOIN LATERAL (
            SELECT (extract(hour FROM o.opens) * 60 + extract(minute FROM o.opens))::int AS m_open,
                   (extract(hour FROM o.closes) * 60 + extract(minute FROM o.closes))::int AS m_close
        ) m
        CROSS JOIN LATERAL (
            SELECT o.day + o.closes AS wall,
                   (o.day + o.closes) AT TIME ZONE p_zone AS ua,
                   (o.day + o.closes - interval '3 hours') AT TIME ZONE p_zone
                       + interval '3 hours' AS ub
        ) c
        CROSS JOIN LATERAL (
            SELECT CAST(o.day AS TIMESTAMP) AT TIME ZONE p_zone AS midnight,
                   CAST(o.day + 1 AS TIMESTAMP) AT TIME ZONE p_zone AS next
        ) z
    ),
    starts AS MATERIALIZED (
        SELECT sp.resource_id, sp.close_at,
               CASE WHEN sp.regular_midnight IS NOT NULL
                    THEN sp.regular_midnight + g.minute * interval '1 minute'
                    ELSE (
                        SELECT CASE WHEN (w.ua AT TIME ZONE p_zone) <> w.wall THEN NULL
                                    WHEN (w.ub AT TIME ZONE p_zone) = w.wall AND w.ub < w.ua
                                    THEN w.ub
                                    ELSE w.ua END
                        FROM (
                            SELECT l.wall,
                                   l.wall AT TIME ZONE p_zone AS ua,
                                   (l.wall - interval '3 hours') AT TIME ZONE p_zone
                                       + interval '3 hours' AS ub
                            FROM (SELECT sp.day + g.minute * interval '1 minute' AS wall) l
                        ) w
                    ) END AS start
        FROM spans sp
        CROSS JOIN LATERAL generate_series(sp.m_first, sp.m_close - 1, p_slot) AS g (minute)
    ),
    busy AS MATERIALIZED (
        SELECT b.resource_id, range_agg(b.span) AS busy
        FROM (
            SELECT a.resource_id, tstzrange(a.starts_at, a.blocked_until, '[)') AS span
            FROM appointments a
            WHERE a.org_id = p_org AND a.resource_id = ANY (p_resources)
              AND a.status <> 'cancelled'
              AND tstzrange(a.starts_at, a.blocked_until, '[)')
                  && tstzrange(p_busy_from, p_busy_to, '[)')
              AND a.id <> p_exclude
            UNION ALL
            SELECT c.resource_id, tstzrange(c.starts_at, c.ends_at, '[)')
            FROM calendar_busy c
            WHERE c.org_id = p_org AND c.resource_id = ANY (p_resources)
              AND c.starts_at < p_busy_to
              AND c.ends_at > p_busy_from
              AND EXISTS (
                  SELECT 1 FROM calendar_links l
                  WHERE l.id = c.link_id AND l.resource_id = c.resource_id AND l.block)
        ) b
        GROUP BY b.resource_id
    )
    SELECT DISTINCT ON (o.key, o.start) o.start, o.resource_id
    FROM (
        SELECT s.start, s.resource_id,
               CASE WHEN p_around IS NULL THEN 0
                    ELSE abs(extract(epoch FROM s.start - p_around)) END AS key
        FROM starts s
        WHERE s.start >= p_earliest
          AND s.start > p_now
          AND s.start <= p_latest
          AND s.start + make_interval(secs => p_duration) <= s.close_at
        ORDER BY 3, 1, 2
        OFFSET 0
    ) o
    WHERE NOT coalesce((
        SELECT b.busy && tstzrange(o.start, o.start + make_interval(secs => p_blocked), '[)')
        FROM busy b WHERE b.resource_id = o.resource_id), false)
    ORDER BY o.key, o.start, o.resource_id
    LIMIT p_limit;
END
$function$
"""


def upgrade() -> None:
    op.execute(FREE_STARTS)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION free_starts(bigint, bigint[], date, date, text, integer, timestamptz, "
        "timestamptz, timestamptz, timestamptz, timestamptz, double precision, "
        "double precision, bigint, integer, timestamptz)"
    )
