-- wrk script: POST /predict with real multipart uploads (the bodies `curl -F image=@file` sends), cycling
-- through the files named in args[1] (one pre-built body per line); prints one JSON line when done.
-- Like curl and browsers, every request gets a boundary of its own: a server that does per-boundary
-- work (Werkzeug compiles two regexes for each) pays for it here as it does for real clients.
local BOUNDARY = "----alexnetbench7MA4YWxkTrZu0gW"
local bodies = {}  -- each body split at its boundaries, rejoined with a fresh one per request
local i, n = 0, 0

local function split(body)
  local parts, start = {}, 1
  while true do
    local a, b = string.find(body, BOUNDARY, start, true)
    if not a then break end
    parts[#parts + 1] = string.sub(body, start, a - 1)
    start = b + 1
  end
  parts[#parts + 1] = string.sub(body, start)
  return parts
end

init = function(args)
  for path in io.lines(args[1]) do
    local f = assert(io.open(path, "rb"))
    bodies[#bodies + 1] = split(f:read("*a"))
    f:close()
  end
end

request = function()
  i = i % #bodies + 1
  n = n + 1
  local boundary = string.format("----alexnetbench%010d%06d", n, math.random(0, 999999))
  -- Each request is a client of its own (X-Client-Id), so a canary share splits the load as it would
  -- split many users.
  return wrk.format("POST", "/predict", {["Content-Type"] = "multipart/form-data; boundary=" .. boundary,
                                         ["X-Client-Id"] = boundary},
                    table.concat(bodies[i], boundary))
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean))
end
