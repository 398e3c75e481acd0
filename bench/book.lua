-- wrk script: one VAPI tool-calls request per call, ~50 KB like VAPI's real bodies.
-- Arguments (after --): rest_file base_epoch mode secret
--   rest_file   the JSON members of a realistic `message` (assistant, artifact, ...) that ride
--               along unchanged, written by bench/run.py
--   base_epoch  first start (UTC seconds); request k books the k-th free 5-minute slot after it
--   mode        distinct | named | same | mixed | refused
-- Every request gets a unique toolCallId and VAPI call id. In `distinct` and `mixed` each also has
-- a caller number and a start of its own, so that every booking can succeed. In `same` one
-- caller re-issues one booking over and over (a model repeating itself, from new calls): the
-- first books, every later one gets that booking back (one caller may hold only a few upcoming
-- bookings, so booking new times for one number is not a load the service takes). Either way,
-- errors mean something is wrong. In `refused` every request asks for a start that bench/run.py
-- filled beforehand (every other 5-minute slot from base_epoch on, 50,000 of them): each must be
-- refused with alternatives, and a booking that succeeds counts as an error. `named` is
-- `distinct` naming the bench resource, so every booking lands on it (the Google-linked one).

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

local rest, base, mode, secret
local counter = 0
local threads = {}
local SLOTS_PER_DAY = 287 -- 00:00 .. 23:50 (a 5-minute appointment must end by 23:55)

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  rest = f:read("*a")
  f:close()
  base = tonumber(args[2])
  mode = args[3]
  secret = args[4]
  nthreads = tonumber(args[5])
  errors = 0
  slots = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. secret
end

function request()
  local k = counter * nthreads + id
  counter = counter + 1
  slots = math.max(slots, k + 1)
  local tag = id .. "-" .. counter .. "-" .. base
  local call
  if mode == "mixed" and counter % 2 == 0 then
    local day = os.date("!%Y-%m-%d", base + 86400 * (k % 30))
    call = '{"id":"a' .. tag .. '","type":"function","function":{"name":"checkAvailability",'
      .. '"arguments":{"date":"' .. day .. '","durationMinutes":5}}}'
  else
    local slot = k
    if mode == "same" then slot = 0 end
    local epoch = base + 86400 * math.floor(slot / SLOTS_PER_DAY) + 300 * (slot % SLOTS_PER_DAY)
    if mode == "refused" then epoch = base + 600 * (k % 50000) end
    local start = os.date("!%Y-%m-%dT%H:%M:00Z", epoch)
    -- Refusals name the filled resource: the organization's default one ("Main") keeps
    -- office hours and is free then.
    local resource = ""
    if mode == "refused" or mode == "named" then resource = ',"resource":"Bench"' end
    call = '{"id":"b' .. tag .. '","type":"function","function":{"name":"bookAppointment",'
      .. '"arguments":{"name":"Bench Caller","start":"' .. start .. '","durationMinutes":5'
      .. resource .. '}}}'
  end
  local phone = "+14155550123"
  if mode ~= "same" then
    -- valid NANP numbers (415, exchanges 220-289): 700,000 distinct callers
    local n = (k + base) % 700000
    phone = string.format("+1415%03d%04d", 220 + math.floor(n / 10000) % 70, n % 10000)
  end
  local body = '{"message":{"type":"tool-calls","call":{"id":"c' .. tag .. '"},'
    .. '"customer":{"number":"' .. phone .. '"},"toolCallList":[' .. call .. '],' .. rest .. '}}'
  return wrk.format(nil, "/api/vapi/tools", nil, body)
end

function response(status, headers, body)
  local refused = string.find(body, '"error"', 1, true)
  if mode == "refused" then refused = not refused end
  if status ~= 200 or refused then
    errors = errors + 1
    if errors <= 3 then
      io.stderr:write("bench error: " .. status .. " " .. string.sub(body, 1, 300) .. "\n")
    end
  end
end

function done(summary, latency, requests)
  bench_report(threads, summary, latency)
end
