-- One request, again and again, every answer checked.
-- Configured by the environment (bench/load.py sets it):
--   BENCH_METHOD, BENCH_PATH, BENCH_BODY, BENCH_HEADERS ("Name: value" lines),
--   BENCH_STATUS (the expected status), BENCH_EXPECT (a plain substring the
--   body must hold; empty: any body).
-- done() prints "BAD <n>": answers with another status or without the substring.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local method, path, body, headers, status, expect

function init(args)
  method = os.getenv("BENCH_METHOD") or "GET"
  path = os.getenv("BENCH_PATH") or "/"
  body = os.getenv("BENCH_BODY")
  if body == "" then body = nil end
  headers = {}
  for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
    local name, value = line:match("^([^:]+):%s*(.*)$")
    if name then headers[name] = value end
  end
  if body then headers["Content-Type"] = "application/x-www-form-urlencoded" end
  status = tonumber(os.getenv("BENCH_STATUS") or "200")
  expect = os.getenv("BENCH_EXPECT") or ""
  bad = 0
end

function request()
  return wrk.format(method, path, headers, body)
end

function response(got, _, answer)
  if got ~= status or (expect ~= "" and not answer:find(expect, 1, true)) then
    bad = bad + 1
  end
end

function done()
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + (thread:get("bad") or 0)
  end
  io.write(string.format("BAD %d\n", total))
end
