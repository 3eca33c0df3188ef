-- wrk script for bench/run's issue-11 cases: a flood of failed logins at
-- POST /rpc/identify, counted by status.
--
-- Environment:
--   BENCH_FLOOD_USER   one username for every attempt (unset: a random
--                      username per attempt, which exists nowhere)
--   BENCH_DELAY_MS     pause after each answer before the next attempt on
--                      that connection (wrk's delay(); unset or 0: closed loop)
--   BENCH_FLOOD_XFF    1: a random X-Forwarded-For address per attempt (a
--                      flood from many addresses; the gateway must trust the
--                      load generator's address, server.trusted_proxies)
--
-- The summary line adds the answers by status: 401 (refused login), 429
-- (rate or lockout), 503 (the function's concurrency limit), and any other.

local user = os.getenv("BENCH_FLOOD_USER")
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0") or 0
local xff = os.getenv("BENCH_FLOOD_XFF") == "1"

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local threads = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
  s401, s429, s503, other = 0, 0, 0, 0
end

request = function()
  local name = user
  if not name or name == "" then
    name = string.format("nobody%08x%04x", math.random(0, 0x7fffffff), math.random(0, 0xffff))
  end
  local body = '{"username":"' .. name .. '","password":"wrong-password-123"}'
  if xff then
    local headers = { ["Content-Type"] = "application/json" }
    headers["X-Forwarded-For"] = string.format("%d.%d.%d.%d",
      math.random(1, 223), math.random(0, 255), math.random(0, 255), math.random(1, 254))
    return wrk.format(nil, nil, headers, body)
  end
  return wrk.format(nil, nil, nil, body)
end

if pause > 0 then
  delay = function() return pause end
end

response = function(status, headers, body)
  if status == 401 then s401 = s401 + 1
  elseif status == 429 then s429 = s429 + 1
  elseif status == 503 then s503 = s503 + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  local a, b, c, d = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + (t:get("s401") or 0)
    b = b + (t:get("s429") or 0)
    c = c + (t:get("s503") or 0)
    d = d + (t:get("other") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH_FLOOD requests=%d req_s=%.1f p50_us=%d p99_us=%d s401=%d s429=%d s503=%d other=%d " ..
    "connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), a, b, c, d,
    e.connect, e.read, e.write, e.timeout))
end
