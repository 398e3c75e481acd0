-- wrk script: the REST booking path (#28), POST /api/v1/bookings with an API key, a new
-- Idempotency-Key per request and a plain JSON body (no VAPI envelope).
-- Arguments (after --): base_epoch key threads
--   base_epoch  first start (UTC seconds); request k books the k-th free 5-minute slot after it
--   key         an API key with bookings:write
-- Bookings name the 5-minute service "Quick" that bench/run.py adds. Each request is a
-- distinct caller at a start of its own, so every booking can succeed: any answer but 201
-- counts as an error.

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

local base, key
local counter = 0
local threads = {}
local SLOTS_PER_DAY = 287 -- 00:00 .. 23:50 (a 5-minute appointment must end by 23:55)

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  base = tonumber(args[1])
  key = args[2]
  nthreads = tonumber(args[3])
  errors = 0
  slots = 0
  wrk.method = "POST"
end

function request()
  local k = counter * nthreads + id
  counter = counter + 1
  slots = math.max(slots, k + 1)
  local epoch = base + 86400 * math.floor(k / SLOTS_PER_DAY) + 300 * (k % SLOTS_PER_DAY)
  local start = os.date("!%Y-%m-%dT%H:%M:00Z", epoch)
  -- valid NANP numbers (415, exchanges 220-289): 700,000 distinct callers
  local n = (k + base) % 700000
  local phone = string.format("+1415%03d%04d", 220 + math.floor(n / 10000) % 70, n % 10000)
  local body = '{"start":"' .. start .. '","name":"Bench Caller","phone":"' .. phone
    .. '","resource":"Bench","service":"Quick"}'
  -- (wrk.format takes these headers instead of wrk.headers, not beside them)
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
    ["Idempotency-Key"] = "rest-" .. id .. "-" .. counter .. "-" .. base,
  }
  return wrk.format(nil, "/api/v1/bookings", headers, body)
end

function response(status, headers, body)
  if status ~= 201 then
    errors = errors + 1
    if errors <= 3 then
      io.stderr:write("bench error: " .. status .. " " .. string.sub(body, 1, 300) .. "\n")
    end
  end
end

function done(summary, latency, requests)
  bench_report(threads, summary, latency)
end
