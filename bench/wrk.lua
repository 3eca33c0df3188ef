-- wrk script for bench/run: POST with a JSON body, optional bearer token,
-- keep-alive (wrk's default), and one machine-readable summary line.
--
-- Environment:
--   BENCH_BODY   the JSON body (fixed), unless BENCH_USERS is set
--   BENCH_TOKEN  a JWT sent as "Authorization: Bearer …" (unset: anonymous)
--   BENCH_USERS  N: each request signs in as a random user of bench/fixture.sql
--                (bench0001 … benchN, password bench-password-NNNN)

local token = os.getenv("BENCH_TOKEN")
local users = tonumber(os.getenv("BENCH_USERS") or "")

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or "{}"
wrk.headers["Content-Type"] = "application/json"
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

-- Each wrk thread has its own Lua state: seed each one differently.
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
end

if users then
  request = function()
    local n = string.format("%04d", math.random(1, users))
    local body = '{"username":"bench' .. n .. '","password":"bench-password-' .. n .. '"}'
    return wrk.format(nil, nil, nil, body)
  end
end

-- One line for bench/run to parse. Latencies in microseconds. wrk counts a
-- status >= 400 in errors.status; connect/read/write/timeout are socket errors.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d req_s=%.1f p50_us=%d p99_us=%d " ..
    "status_errors=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
