-- wrk script: replay requests that bench/run.py signed beforehand, each exactly once.
-- wrk's Lua has no HMAC, so the signed scenarios (Retell's X-Retell-Signature, Twilio's
-- X-Twilio-Signature) are made in Python right before the run and written one per line:
--   path TAB content-type TAB header-name TAB header-value TAB body
-- Arguments (after --): file threads status good bad
--   status  the only HTTP status that counts as success (200, 201, ...)
--   good    a string the answer must contain ("-": none)
--   bad     a string the answer must not contain ("-": none)
-- Thread t sends lines t, t + threads, ...: no line goes twice. A pool that runs out counts
-- every further request as an error (the pool is sized well past the run's length).

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

local lines = {}
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    table.insert(lines, line)
  end
  nthreads = tonumber(args[2])
  status_ok = tonumber(args[3])
  good = args[4]
  bad = args[5]
  errors = 0
  slots = 0
  exhausted = 0
  wrk.method = "POST"
end

function request()
  local k = counter * nthreads + id + 1
  counter = counter + 1
  if k > #lines then
    exhausted = exhausted + 1
    k = #lines -- sent again: answered as a replay, counted as an error below
  end
  slots = math.max(slots, k) -- line k is signed.slot_epoch's slot k - 1
  local path, ctype, name, value, body = string.match(lines[k], "^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
  local headers = {["Content-Type"] = ctype, [name] = value}
  return wrk.format(nil, path, headers, body)
end

function response(status, headers, body)
  local ok = status == status_ok
  if ok and good ~= "-" then ok = string.find(body, good, 1, true) ~= nil end
  if ok and bad ~= "-" then ok = string.find(body, bad, 1, true) == nil end
  if not ok or exhausted > 0 then
    errors = errors + 1
    if errors <= 3 then
      local why = ""
      if exhausted > 0 then why = "(signed pool exhausted) " end
      io.stderr:write("bench error: " .. why .. status .. " " .. string.sub(body, 1, 300) .. "\n")
    end
  end
end

function done(summary, latency, requests)
  bench_report(threads, summary, latency)
end
