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
   three it offers: the candidates (within notice, horizon and closing) are sorted by
   distance first, and tested against the busy multirange only until three distinct starts
   are found (DISTINCT ON over the sorted rows names the lowest free resource, as before). A
   day without a clock change maps its wall minutes from its midnight's instant with no zone
   lookup per start; a day with one converts each start as zoneinfo's fold=0 does (a start
   in the skipped hour does not exist, a repeated time is its earlier occurrence, a closing
   time in the gap moves past it), which PostgreSQL alone does not (it reads a repeated time
   as the later occurrence). No migration: the exclusion constraint's GiST index finds the
   bookings. Measured with `make profile-refusals` (bench/refusals.py: in-process, 50,000
   bookings, the two engines alternating on one diary, two passes of 200 refusals each):
   per refusal, rows fetched 1,021 -> 14, Python CPU 16.1/15.7 -> 5.7/5.2 ms, wall 23.3/24.9
   -> 14.8/10.7 ms, p99 99/109 -> 33/33 ms, statements unchanged (9). The statement alone
   (EXPLAIN ANALYZE, warm connection): 0.7 ms planning, 2.0 ms execution (1,435 candidate
   starts sorted, 6 tested against one multirange of 1,008 bookings); PostgreSQL keeps
   custom plans for it (0 generic of 426 executions). The refusal scenario of `make bench`
   alone (c=8, 8 s, three runs each, the code before and after back to back on this shared
   machine at a load average of 5 to 8): before 72/105/146 answers/s, p99 406/350/263 ms;
   after 193/211/244 answers/s, p99 110/119/99 ms. A refusal is now a booking attempt plus
   three statements (holdings, the one-start diary read that explains the refusal, the free
   starts); the last `make bench` of the issue gives the figure on a quiet machine.
   *Risk:* two engines: the slot listing (`check_availability`: the tool, the diary page)
   still uses the Python one, so a change to the scheduling rules must be made in both;
   tests/integration/test_free_starts_property.py holds them to identical answers over random
   diaries (hours, exceptions, bookings with other buffers, cancelled ones, an excluded one,
   calendars blocking or not, fresh or stale, several resources, clock changes of London and
   New York) and fails when the DST handling is broken. PostgreSQL's time zone data and
   Python's may differ after a zone changes its rules (then an offered time can be refused
   when asked for; the booking is still checked by check_start and the exclusion
   constraint). No zone changes its offset twice within three hours; the mapping relies on
   it. The work moves to the database server: a wide search over many resources on a fine
   grid (resources x days x starts) is paid there, chunked as before; and it is planned at
   every execution, prepared or not (0.7 ms warm).
"""
