-- wrk script: GET /_security/_authenticate with a different access token on every request,
-- each token used once, so that every check misses the bearer cache (tokens that were issued
-- but never checked are not in it). The tokens come from the file "$TOKENS", one per line,
-- dealt round-robin to the "$WRK_THREADS" threads. A thread that runs out starts its list
-- again; done() prints how many requests reused a token, and bench/run.sh fails the run if
-- any did (the figure would then not be a pure miss rate).
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(os.getenv("WRK_THREADS"))
  mine, uses = {}, 0
  local n = 0
  for line in io.lines(os.getenv("TOKENS")) do
    if n % nthreads == id - 1 then
      mine[#mine + 1] = line
    end
    n = n + 1
  end
  count = #mine
  assert(count > 0, "no tokens for thread " .. id)
end

function request()
  uses = uses + 1
  local headers = {}
  for k, v in pairs(wrk.headers) do
    headers[k] = v
  end
  headers["Authorization"] = "Bearer " .. mine[(uses - 1) % count + 1]
  return wrk.format("GET", nil, headers)
end

function done(summary, latency, requests)
  local reused = 0
  for _, t in ipairs(threads) do
    reused = reused + math.max(0, t:get("uses") - t:get("count"))
  end
  io.write(string.format("tokens reused: %d\n", reused))
end
