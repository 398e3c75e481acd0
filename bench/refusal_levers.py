"""The refusal's lever (#30) and its risk, written into docs/PERFORMANCE.md by `make bench`
after the booking path's levers (bench/run.py's LEVERS): kept apart so that each issue's
section is edited in one place."""

REFUSAL_LEVERS = """
## Levers taken (#30): refusals

1. **The nearest free starts computed in PostgreSQL** (`repositories/free_starts.py`, used by
   `use_cases/openings.alternatives`). A refusal used to load every booking of the days its
   search looked at (five days first: about 1,000 rows in the bench's diary) and walk the
   grid in Python. Now one statement per window searched (the same windows: two days either
   side, then a week before to three weeks after, then 14 days at a time) builds each
   resource's opening ranges for the local days (the day's exceptions, else its weekday's
   hours), its grid starts by wall-clock minute in the organization's zone, its busy time as
   one multirange (`range_agg` of its bookings, buffers included, found through the exclusion
   constraint's GiST index, and of its blocking calendars' busy times), keeps the starts
   whose [start, end + buffer) does not overlap it, within notice and horizon, skipping a
   resource whose blocking calendar is stale with policy "refuse", and returns only the
   three it offers. A day without a clock change maps its wall minutes from its midnight's
   instant with no zone lookup per start; a day with one converts each start as zoneinfo's
   fold=0 does (a start in the skipped hour does not exist, a repeated time is its earlier
   occurrence, a closing time in the gap moves past it), which PostgreSQL alone does not (it
   reads a repeated time as the later occurrence). Measured with `make profile-refusals`
   (bench/refusals.py: in-process, 50,000 bookings, both engines alternating on one diary,
   two passes of 200 refusals): per refusal, rows fetched 1,021 -> 14, Python CPU 15.9/16.2 ->
   5.6/5.8 ms, wall 18.8/19.5 -> 10.5/13.8 ms, p99 97/100 -> 17/34 ms, statements unchanged
   (9); the statement itself, EXPLAIN ANALYZE: 2.5-3.7 ms execution (1,435 candidate starts,
   1,008 bookings in one multirange), 2.2 ms planning when not prepared.
   *Risk:* two engines: the slot listing (checkAvailability, the diary page) still uses the
   Python one, so a change to the scheduling rules must be made in both;
   tests/integration/test_free_starts_property.py holds them to identical answers over random
   diaries (hours, exceptions, bookings with other buffers, cancelled ones, an excluded one,
   calendars blocking or not, fresh or stale, several resources, clock changes of London and
   New York) and fails when the DST handling is broken. PostgreSQL's time zone data and
   Python's may differ after a zone changes its rules (then an offered time can be refused
   when asked for; the booking is still checked by check_start and the exclusion
   constraint). No zone changes its offset twice within three hours; the mapping relies on
   it. The work moves to the database server: a wide search over many resources on a fine
   grid (resources x days x starts) is paid there, chunked as before; through a pooler the
   statement is planned every time (about 2 ms).
"""
