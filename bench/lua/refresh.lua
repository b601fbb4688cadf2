-- Rotating refresh-token chains: one connection per wrk thread (-t N -c N),
-- each spending its own chain -- every answer's refresh_token is the next
-- request's.  BENCH_TOKENS names a file with one refresh token per line (at
-- least one per thread); BENCH_PATH the token endpoint; BENCH_HEADERS the
-- client authentication.  done() prints "BAD <n>": answers that were not 200
-- with a new refresh_token (a broken chain stays broken, so every later
-- request of that thread is bad too).

local threads = {}
local tokens = {}

function setup(thread)
  if #tokens == 0 then
    for line in io.lines(os.getenv("BENCH_TOKENS")) do
      table.insert(tokens, line)
    end
  end
  table.insert(threads, thread)
  thread:set("chain", tokens[#threads])
end

local path, headers

function init(args)
  path = os.getenv("BENCH_PATH")
  headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
  for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
    local name, value = line:match("^([^:]+):%s*(.*)$")
    if name then headers[name] = value end
  end
  bad = 0
end

function request()
  return wrk.format("POST", path, headers, "grant_type=refresh_token&refresh_token=" .. chain)
end

function response(got, _, answer)
  local next_token = got == 200 and answer:match('"refresh_token"%s*:%s*"([^"]+)"')
  if next_token then
    chain = next_token
  else
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
