-- wrk script: GET /_security/_authenticate with an access token drawn at random on every
-- request from the first "$HOT" lines of the file "$TOKENS" (all lines when HOT is 0 or
-- unset): a hot set that fits the bearer cache, or every token stored (uniform draws, which
-- mostly miss it). Each thread seeds its own generator.
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  local hot = tonumber(os.getenv("HOT") or "0")
  tokens = {}
  for line in io.lines(os.getenv("TOKENS")) do
    tokens[#tokens + 1] = line
    if hot > 0 and #tokens >= hot then
      break
    end
  end
  count = #tokens
  assert(count > 0, "no tokens in " .. os.getenv("TOKENS"))
  math.randomseed(os.time() * 1000 + id)
end

function request()
  local headers = {}
  for k, v in pairs(wrk.headers) do
    headers[k] = v
  end
  headers["Authorization"] = "Bearer " .. tokens[math.random(count)]
  return wrk.format("GET", nil, headers)
end
