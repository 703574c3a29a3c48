-- wrk script: POST /predict with real multipart uploads (the bodies `curl -F image=@file` sends), cycling
-- through the files named in args[1] (one pre-built body per line); prints one JSON line when done.
local bodies = {}
local i = 0
local content_type = "multipart/form-data; boundary=----alexnetbench7MA4YWxkTrZu0gW"

init = function(args)
  for path in io.lines(args[1]) do
    local f = assert(io.open(path, "rb"))
    bodies[#bodies + 1] = f:read("*a")
    f:close()
  end
end

request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "/predict", {["Content-Type"] = content_type}, bodies[i])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean))
end
