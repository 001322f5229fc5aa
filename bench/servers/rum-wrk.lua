-- wrk script of the real-user-monitoring benchmark (bench/rum.sh): POST /_edgebox/rum/batch with the batch of 10
-- events in $RUM_BODY (bench/servers/rum-tool.mjs body), each request naming another client in X-Forwarded-For:
-- 10.a.b.c, round-robin over 65,536 addresses, so no client network (for IPv4 the address itself, clientNetwork in
-- src/http/address.ts) comes near the collector's 120 beacons a minute (Edgebox lists 127.0.0.1 in trustedProxies).
-- done() appends "answered non2xx3xx sent" to $RUM_TALLY: what was answered, what was refused, and how many requests
-- were written (request() calls), so the rows in the store can be checked against the 204 answers.
local f = assert(io.open(os.getenv("RUM_BODY"), "rb"))
local body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.body = body

n = 0   -- a global: done() reads it from each thread (thread:get)
local threads = {}
function setup(thread) table.insert(threads, thread) end

function request()
  n = n + 1
  local i = n % 65536
  return wrk.format("POST", nil, {
    ["Host"] = wrk.host .. ":" .. wrk.port,
    ["Content-Type"] = "application/json",
    ["X-Forwarded-For"] = "10." .. math.floor(i / 256) .. "." .. (i % 256) .. "." .. (1 + math.floor(n / 65536) % 250),
  }, body)
end

function done(summary, latency, requests)
  local sent = 0
  for _, t in ipairs(threads) do sent = sent + (t:get("n") or 0) end
  local path = os.getenv("RUM_TALLY")
  if path then
    local out = assert(io.open(path, "a"))
    out:write(string.format("%d %d %d\n", summary.requests, summary.errors.status, sent))
    out:close()
  end
end
