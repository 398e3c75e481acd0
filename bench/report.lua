-- The BENCH line each wrk script of the bench prints when wrk is done (bench/run.py reads it):
-- wrk's figures, the errors the script's threads counted in their `errors` global, and
-- `slots`: one past the highest slot index any thread used (its `slots` global; 0 when a script
-- keeps none), so that bench/run.py gives the next run the days after the ones this run booked.
-- Loaded by book.lua, book_rest.lua and replay.lua:
--   dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

function bench_report(threads, summary, latency)
  local app_errors = 0
  local slots = 0
  for _, t in ipairs(threads) do
    app_errors = app_errors + t:get("errors")
    slots = math.max(slots, t:get("slots") or 0)
  end
  io.write(string.format(
    'BENCH {"requests":%d,"seconds":%.3f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,'
      .. '"max_ms":%.3f,"socket_errors":%d,"http_errors":%d,"app_errors":%d,"slots":%d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, app_errors, slots))
end
